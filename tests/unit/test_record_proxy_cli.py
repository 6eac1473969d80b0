"""`rrlab proxy` refuses what the policy forbids before binding or writing anything (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rrlab.cli import main
from rrlab.proxy.cli import parse_route


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = main(["proxy", *argv])
    return rc, capsys.readouterr().err


def test_upstream_not_on_allow_list_is_refused(tmp_path: Path, capsys) -> None:
    rc, err = run(
        capsys, "--kafka", "39092=10.1.2.3:9092", "--cassette", str(tmp_path / "c"),
        "--write-root", str(tmp_path),
    )  # fmt: skip
    assert rc == 2
    assert "upstream 10.1.2.3:9092 is not allowed by profile os_record" in err
    assert "--allow-upstream 10.1.2.3:9092" in err
    assert not (tmp_path / "c").exists()


def test_non_loopback_listener_is_refused(tmp_path: Path, capsys) -> None:
    rc, err = run(
        capsys, "--amqp", "0.0.0.0:39672=127.0.0.1:5672", "--cassette", str(tmp_path / "c"),
        "--write-root", str(tmp_path),
    )  # fmt: skip
    assert rc == 2 and "loopback only" in err and "--allow-non-loopback-listen" in err


def test_cassette_outside_write_roots_is_refused(tmp_path: Path, capsys) -> None:
    rc, err = run(capsys, "--mqtt", "39883=127.0.0.1:1883", "--cassette", str(tmp_path / "c"))
    assert rc == 2 and "outside the allowed write roots" in err
    assert not (tmp_path / "c").exists()


def test_unknown_profile_and_missing_route(tmp_path: Path, capsys) -> None:
    rc, err = run(capsys, "--cassette", str(tmp_path / "c"))
    assert rc == 2 and "no route given" in err
    rc, err = run(
        capsys, "--mqtt", "39883=127.0.0.1:1883", "--cassette", str(tmp_path / "c"),
        "--profile", "nope",
    )  # fmt: skip
    assert rc == 2 and "unknown profile 'nope'" in err and "os_record" in err


def test_a_bad_compaction_threshold_is_a_usage_error(tmp_path: Path, capsys) -> None:
    rc, err = run(
        capsys, "--mqtt", "39883=127.0.0.1:1883", "--cassette", str(tmp_path / "c"),
        "--write-root", str(tmp_path), "--compact-over", "-5",
    )  # fmt: skip
    assert rc == 2 and "compaction threshold must be a byte count, never or always" in err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("19092=127.0.0.1:9092", ("127.0.0.1", 19092, "127.0.0.1", 9092)),
        ("127.0.0.2:19092=broker:9092", ("127.0.0.2", 19092, "broker", 9092)),
        ("[::1]:19092=[::1]:9092", ("::1", 19092, "::1", 9092)),
    ],
)
def test_route_syntax(text: str, expected: tuple) -> None:
    r = parse_route("kafka", text)
    assert (r.listen_host, r.listen_port, r.upstream_host, r.upstream_port) == expected


@pytest.mark.parametrize("text", ["19092", "19092=9092", "x=127.0.0.1:9092", "1=h:70000"])
def test_bad_route_is_one_line_usage_error(text: str, tmp_path: Path, capsys) -> None:
    rc, err = run(capsys, "--kafka", text, "--cassette", str(tmp_path / "c"))
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("rrlab proxy: --kafka")
