"""rr.policy: profiles as data, write roots, budgets."""

from __future__ import annotations

import dataclasses
import os

import pytest

from rrlab.rr.policy import (
    PROFILES,
    BudgetExceeded,
    Budgets,
    PolicyError,
    UnknownProfile,
    WritePathRefused,
    check_write_path,
    default_write_roots,
    get_profile,
)


def test_profiles_are_data():
    rec = get_profile("os_record")
    assert rec.upstream_allow == ("127.0.0.1:9092", "127.0.0.1:5672", "127.0.0.1:1883")
    assert rec.write_roots == ("cassettes", "out")
    assert get_profile("ci_replay").strict is True
    assert get_profile("rr_replay").strict is False
    assert get_profile("rr_replay").upstream_allow == ()
    assert set(PROFILES) == {"os_record", "rr_replay", "ci_replay"}


def test_unknown_profile_lists_valid_names():
    with pytest.raises(UnknownProfile) as err:
        get_profile("nope")
    assert "'nope'" in str(err.value)
    for name in PROFILES:
        assert name in str(err.value)


def test_budget_defaults_and_validation():
    b = Budgets()
    assert (b.max_cassette_bytes, b.max_frames, b.max_frame_bytes) == (
        256 << 20,
        1_000_000,
        64 << 20,
    )
    assert Budgets.from_dict(b.to_dict()) == b
    with pytest.raises(PolicyError, match="max_frames"):
        Budgets(max_frames=0)


def test_budget_exceeded_message():
    exc = BudgetExceeded("max_frames", 10, 11)
    assert "max_frames" in str(exc) and "10" in str(exc) and "11" in str(exc)
    assert exc.to_dict() == {"budget": "max_frames", "limit": 10, "value": 11}


def test_write_path_inside_roots(tmp_path):
    assert (
        check_write_path("cassettes/demo", base=tmp_path) == tmp_path.resolve() / "cassettes/demo"
    )
    assert check_write_path(tmp_path / "out" / "x", base=tmp_path) == tmp_path.resolve() / "out/x"
    assert default_write_roots(tmp_path) == (tmp_path / "cassettes", tmp_path / "out")


@pytest.mark.parametrize(
    "path",
    ["cassettes/../etc", "../cassettes/x", "/etc/cassette", "cassettesx", "elsewhere/c", "outside"],
)
def test_write_path_escapes_refused(tmp_path, path):
    with pytest.raises(WritePathRefused) as err:
        check_write_path(path, base=tmp_path)
    assert path in str(err.value) and "cassettes" in str(err.value)


def test_a_root_itself_is_inside_the_roots(tmp_path):
    """`--cassette out` was refused as "outside the allowed write roots" (issue G.8)."""
    assert check_write_path("out", base=tmp_path) == tmp_path.resolve() / "out"
    assert check_write_path("cassettes/", base=tmp_path) == tmp_path.resolve() / "cassettes"


def test_symlink_escape_refused(tmp_path):
    (tmp_path / "cassettes").mkdir()
    os.symlink("/etc", tmp_path / "cassettes" / "link")
    with pytest.raises(WritePathRefused):
        check_write_path("cassettes/link/c", base=tmp_path)


def test_roots_are_a_parameter(tmp_path):
    assert check_write_path(tmp_path / "c", [tmp_path]) == tmp_path.resolve() / "c"
    with pytest.raises(WritePathRefused):
        check_write_path(tmp_path / "c", [tmp_path / "cassettes"])


def test_tmp_only_when_allowed(tmp_path):
    rec = get_profile("os_record")
    with pytest.raises(WritePathRefused):
        rec.check_write_path(tmp_path / "c", base="/work")
    scratch = dataclasses.replace(rec, allow_tmp=True)
    if not tmp_path.resolve().is_relative_to(os.path.realpath(__import__("tempfile").gettempdir())):
        pytest.fail("pytest tmp_path is expected under the system temp dir")
    assert scratch.check_write_path(tmp_path / "c", base="/work") == tmp_path.resolve() / "c"
