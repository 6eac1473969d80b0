"""`rrlab inspect` and `rrlab verify`: tables, canonical JSON, one-line errors, exit codes."""

from __future__ import annotations

import json

import canonicaljson
import pytest
from test_cassette_reader import crash, record

from rrlab import cli
from rrlab.rr.protocols import protocol_for


@pytest.fixture(autouse=True)
def only_cassette_commands(monkeypatch):
    # other subcommands belong to other modules; keep these tests about ours
    monkeypatch.setattr(
        cli, "SUBCOMMANDS", {"inspect": "rrlab.cassette_cli", "verify": "rrlab.cassette_cli"}
    )


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_table(tmp_path, capsys):
    record(tmp_path / "c")
    code, out, err = run(capsys, "inspect", str(tmp_path / "c"))
    assert code == 0 and err == ""
    for column in ("conn", "proto", "route", "frames c2s/s2c", "bytes c2s/s2c"):
        assert column in out
    for column in ("seq", "t(ms)", "dir", "api/method", "ids", "size", "red"):
        assert column in out
    assert "127.0.0.1:19092 -> 127.0.0.1:9092" in out
    assert "Metadata v12" in out and "corr=2" in out
    assert "Connection.StartOk" in out and "ch=0" in out
    start_ok = next(line for line in out.splitlines() if "Connection.StartOk" in line)
    assert "->" in start_ok and start_ok.endswith("R")
    tune = next(line for line in out.splitlines() if "Connection.Tune" in line)
    assert "<-" in tune and not tune.endswith("R")


def test_inspect_conn_filter_and_json(tmp_path, capsys):
    record(tmp_path / "c")
    code, out, _ = run(capsys, "inspect", str(tmp_path / "c"), "--conn", "2", "--json")
    assert code == 0
    body = out.encode().rstrip(b"\n")
    doc = json.loads(body)
    assert body == canonicaljson.encode_canonical_json(doc)
    assert [f["seq"] for f in doc["frames"]] == [2, 3]
    assert all("raw" not in f and f["size"] > 0 for f in doc["frames"])
    assert [c["id"] for c in doc["manifest"]["connections"]] == [2]
    code, _, err = run(capsys, "inspect", str(tmp_path / "c"), "--conn", "9")
    assert code == 2 and "no connection 9" in err and "1, 2" in err


def test_verify_exit_codes(tmp_path, capsys):
    path = tmp_path / "c"
    record(path)
    code, out, _ = run(capsys, "verify", str(path))
    assert code == 0 and out.count("\n") == 1 and "ok, 5 frames" in out

    frames = path / "frames.jsonl"
    frames.write_bytes(frames.read_bytes().replace(b"Metadata", b"MetaData"))
    code, out, err = run(capsys, "verify", str(path))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "sha256 mismatch" in err and "Traceback" not in err
    code, _, err = run(capsys, "verify", str(path), "--repair")
    assert code == 1 and "refusing to repair" in err
    code, _, err = run(capsys, "inspect", str(path))
    assert code == 1 and "sha256 mismatch" in err

    code, _, err = run(capsys, "verify", str(tmp_path / "nope"))
    assert code == 2 and "no such cassette" in err


def test_verify_repair_cli(tmp_path, capsys):
    path = tmp_path / "c"
    crash(path)
    with open(path / "frames.jsonl", "ab") as fh:
        fh.write(b'{"conn":2,"di')
    code, _, err = run(capsys, "verify", str(path))
    assert code == 1 and f"rrlab verify --repair {path}" in err
    code, out, _ = run(capsys, "verify", str(path), "--repair")
    assert code == 0 and "repaired" in out and "13 bytes" in out
    code, out, _ = run(capsys, "inspect", str(path))
    assert code == 0 and "repaired" in out


def test_usage_errors_exit_2(tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("proto", "summary", "what", "ids"),
    [
        (
            "kafka",
            {"api": "Fetch", "api_key": 1, "version": 12, "correlation_id": 7},
            "Fetch v12",
            "corr=7",
        ),
        ("kafka", {"api_key": 3, "correlation_id": 1, "error_code": 5}, "3", "corr=1 err=5"),
        (
            "amqp",
            {"channel": 1, "frame": "method", "method": "Basic.Publish"},
            "Basic.Publish",
            "ch=1",
        ),
        ("amqp", {"channel": 1, "frame": "body", "size": 9}, "body", "ch=1"),
        (
            "mqtt",
            {"packet": "PUBLISH", "packet_id": 4, "topic": "t/1"},
            "PUBLISH",
            "pid=4 topic=t/1",
        ),
        ("mqtt", {"type": "PINGREQ"}, "PINGREQ", ""),
        ("mqtt", {"packet": "type 0", "error": "bad"}, "type 0 (undecoded)", ""),
        ("kafka", {"weird": [1, 2], "stream_id": 3}, "?", "stream_id=3"),
        ("amqp", {}, "?", ""),
    ],
)
def test_describe_summary_shapes(proto, summary, what, ids):
    assert protocol_for(proto).describe(summary) == (what, ids)
    assert str(protocol_for(proto).describe(summary)) == f"{what} {ids}".strip()
