"""A cassette is untrusted input (issue I.3): crafted cassettes, as a pull request could bring.

Each is refused when it is opened, in one line and before any command runs (`rrlab replay`,
`rrlab serve`: exit 2), and nothing outside the cassette is read, printed or written: artifact
keys with `..` or an absolute path, a symlinked artifact (or artifacts/ directory), a symlinked
frames.jsonl or cassette.json (repair must not touch the file outside), a frames line over the
frame budget (refused without being read whole), bad base64 behind a recomputed digest, a
missing artifact, and escape sequences in what `rrlab inspect` prints.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from rrlab.rr.canonical import dumps
from rrlab.rr.cassette import (
    ArtifactMissing,
    CassetteError,
    CassetteReader,
    CassetteWriter,
    DigestMismatch,
    MalformedFrame,
    MalformedManifest,
    UnsafePath,
    read_artifact,
    verify,
)
from rrlab.rr.policy import Budgets

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"root:SECRET-PASSWORD-HASH:19000:0:99999:7:::\n"
ARTIFACT = "out/aggregate.json"


def cassette(path: Path, *, artifact: bytes = b'{"n":1}\n', finalize: bool = True, **kw):
    """A small real cassette (Kafka frames) with one artifact, like `rrlab record` makes."""
    w = CassetteWriter.create(path, **kw)
    w.add_route("kafka", "127.0.0.1:19092", "127.0.0.1:9092")
    conn = w.open_connection("kafka", "127.0.0.1:19092", "127.0.0.1:9092")
    w.write_frame(conn, "c2s", "kafka", {"api": "Metadata", "version": 12}, b"\x00" * 40)
    w.write_frame(conn, "s2c", "kafka", {"correlation_id": 2}, b"\x01" * 30)
    w.write_frame(conn, "c2s", "kafka", {"api": "Produce", "version": 9}, b"p" * 100)
    src = path.parent / f"{path.name}-src"
    src.write_bytes(artifact)
    w.add_artifact(src, ARTIFACT)
    if finalize:
        w.finalize()
    else:
        os.close(w._fd)  # the recorder died: its descriptors and its lock are gone
        w._lock.release()
    return w


def edit_manifest(path: Path, edit) -> None:
    doc = json.loads((path / "cassette.json").read_bytes())
    edit(doc)
    (path / "cassette.json").write_bytes(dumps(doc))


def reseal(path: Path, data: bytes) -> None:
    """Replace frames.jsonl and recompute its digest in the manifest, as an attacker would."""
    (path / "frames.jsonl").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    edit_manifest(path, lambda d: d["frames_file"].update(sha256=sha, bytes=len(data)))


def rrlab(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rrlab", *argv], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def refused_before_the_command(path: Path, tmp_path: Path, text: str) -> None:
    """`rrlab replay` and `rrlab serve` exit 2 with one line naming the problem; the command
    never ran (its marker file is absent), nothing listened."""
    marker = tmp_path / "command-ran"
    replay = rrlab("replay", "--cassette", str(path), "--", "touch", str(marker), cwd=tmp_path)
    serve = rrlab("serve", "--cassette", str(path), "--report", "", cwd=tmp_path)
    for proc in (replay, serve):
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr and SECRET.decode() not in proc.stderr + proc.stdout
    assert not marker.exists()


# -- artifact keys and links ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["../../../tmp/x", "/etc/passwd", "out/../../x", "a//b", "./a"])
def test_artifact_key_outside_the_cassette_is_refused(tmp_path, key):
    """Today replay compared `artifacts/../../../tmp/x` with `../../../tmp/x`: one outside file
    with itself, OK, and the command's real output never looked at."""
    path = tmp_path / "c"
    cassette(path)
    digest = hashlib.sha256(b"x").hexdigest()
    edit_manifest(path, lambda d: d.update(artifacts={key: digest}))
    with pytest.raises(MalformedManifest, match="not a relative path without"):
        CassetteReader.open(path)
    refused_before_the_command(path, tmp_path, "not a relative path without '..'")


def test_symlinked_artifact_is_refused_and_its_target_never_shown(tmp_path):
    """Today a link to a secret file printed the secret in the unified diff and the report.
    The manifest even carries the secret's digest: only refusing the link protects it."""
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    path = tmp_path / "c"
    cassette(path)
    target = path / "artifacts" / ARTIFACT
    target.unlink()
    target.symlink_to(secret)
    digest = hashlib.sha256(SECRET).hexdigest()
    edit_manifest(path, lambda d: d.update(artifacts={ARTIFACT: digest}))
    with pytest.raises(UnsafePath, match="is a symlink"):
        CassetteReader.open(path)
    with pytest.raises(UnsafePath):
        read_artifact(path, ARTIFACT, digest)
    with pytest.raises(UnsafePath):
        verify(path)
    refused_before_the_command(path, tmp_path, "is a symlink")


def test_symlinked_artifacts_directory_is_refused(tmp_path):
    outside = tmp_path / "elsewhere" / "out"
    outside.mkdir(parents=True)
    (outside / "aggregate.json").write_bytes(SECRET)
    path = tmp_path / "c"
    cassette(path)
    (path / "artifacts" / "out" / "aggregate.json").unlink()
    (path / "artifacts" / "out").rmdir()
    (path / "artifacts").rmdir()
    (path / "artifacts").symlink_to(outside.parent)
    digest = hashlib.sha256(SECRET).hexdigest()
    edit_manifest(path, lambda d: d.update(artifacts={ARTIFACT: digest}))
    with pytest.raises(UnsafePath, match="'artifacts', which is a symlink"):
        CassetteReader.open(path)


def test_missing_artifact_is_one_line_not_a_traceback(tmp_path):
    path = tmp_path / "c"
    cassette(path)
    (path / "artifacts" / ARTIFACT).unlink()
    with pytest.raises(ArtifactMissing):
        CassetteReader.open(path)
    refused_before_the_command(path, tmp_path, "listed in the manifest but missing")


def test_artifact_bytes_are_checked_against_the_manifest_when_read(tmp_path):
    path = tmp_path / "c"
    cassette(path)
    digest = json.loads((path / "cassette.json").read_bytes())["artifacts"][ARTIFACT]
    assert read_artifact(path, ARTIFACT, digest) == b'{"n":1}\n'
    (path / "artifacts" / ARTIFACT).write_bytes(b'{"n":2}\n')  # changed after opening
    with pytest.raises(DigestMismatch, match="artifacts/out/aggregate.json"):
        read_artifact(path, ARTIFACT, digest)


# -- frames.jsonl and cassette.json --------------------------------------------------------------


def test_symlinked_frames_are_refused_and_repair_leaves_the_outside_file_alone(tmp_path):
    """Today `verify --repair` followed a symlinked frames.jsonl and truncated the file outside."""
    path = tmp_path / "c"
    cassette(path, finalize=False)
    frames = path / "frames.jsonl"
    outside = tmp_path / "precious.log"
    outside.write_bytes(frames.read_bytes() + b"{\"torn tail of someone else's file")
    before = outside.read_bytes()
    frames.unlink()
    frames.symlink_to(outside)
    proc = rrlab("verify", "--repair", str(path), cwd=tmp_path)
    assert proc.returncode == 1 and "frames.jsonl' is a symlink" in proc.stderr, proc.stderr
    assert outside.read_bytes() == before
    assert json.loads((path / "cassette.json").read_bytes())["finalized"] is False  # unrepaired


def test_finalized_cassette_with_symlinked_frames_or_manifest_is_refused(tmp_path):
    path = tmp_path / "c"
    cassette(path)
    for name in ("frames.jsonl", "cassette.json"):
        real = tmp_path / f"real-{name}"
        os.replace(path / name, real)
        (path / name).symlink_to(real)
        with pytest.raises(UnsafePath, match=f"'{name}' is a symlink"):
            CassetteReader.open(path)
        with pytest.raises(UnsafePath):
            verify(path)
        (path / name).unlink()
        os.replace(real, path / name)
    CassetteReader.open(path).close()  # and whole again, it opens


def test_repair_never_writes_through_a_planted_temp_link(tmp_path):
    path = tmp_path / "c"
    cassette(path, finalize=False)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (path / ".cassette.json.tmp").symlink_to(victim)
    assert verify(path, repair=True).repaired
    assert victim.read_bytes() == b"keep me"
    assert not (path / "cassette.json").is_symlink()


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    path = tmp_path / "c"
    cassette(path)
    (path / "artifacts" / ARTIFACT).unlink()
    os.mkfifo(path / "artifacts" / ARTIFACT)
    with pytest.raises(UnsafePath, match="not a regular file"):
        CassetteReader.open(path)


def test_sizes_past_the_raw_bytes_behind_a_recomputed_digest_are_refused_at_open(tmp_path):
    """A line whose size reaches past frames.raw would shift every later frame's bytes: the
    sizes must add up to frames.raw exactly, checked at open, before the command runs."""
    path = tmp_path / "c"
    cassette(path)
    lines = (path / "frames.jsonl").read_bytes().splitlines(keepends=True)
    doc = json.loads(lines[2])
    doc["size"] += 1
    lines[2] = dumps(doc) + b"\n"
    reseal(path, b"".join(lines))
    text = "add up to"
    with pytest.raises(CassetteError, match=text):
        CassetteReader.open(path)
    with pytest.raises(MalformedFrame, match="line 3: frames.raw ends inside this frame"):
        verify(path)  # which reads the bytes frame by frame
    refused_before_the_command(path, tmp_path, text)


def test_tampered_raw_bytes_are_refused_by_their_digest(tmp_path):
    path = tmp_path / "c"
    cassette(path)
    raw = path / "frames.raw"
    data = bytearray(raw.read_bytes())
    data[0] ^= 1
    raw.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="frames.raw"):
        CassetteReader.open(path)
    with pytest.raises(DigestMismatch, match="frames.raw"):
        verify(path)
    with pytest.raises(DigestMismatch, match="refusing to repair"):
        verify(path, repair=True)


@pytest.mark.parametrize(
    "summary",
    [b'{"api":"Produce"', b'{"a":1}{"b":2}', b'{"api":"\xff"}', b'{"a":NaN-}'],
)
def test_bad_summary_behind_a_recomputed_digest_is_refused_at_open(tmp_path, summary):
    path = tmp_path / "c"
    cassette(path)
    data = (path / "frames.jsonl").read_bytes()
    head, _, tail = data.partition(b'"summary":{"api":"Metadata","version":12}')
    reseal(path, head + b'"summary":' + summary + tail)
    with pytest.raises(MalformedFrame, match="line 1"):
        CassetteReader.open(path)


def test_frame_over_the_budget_is_refused_at_open(tmp_path):
    """The budget that applies is the reader's (a manifest cannot raise it), lowered by the
    cassette's own."""
    path = tmp_path / "c"
    cassette(path, budgets=Budgets(max_frame_bytes=1000))
    CassetteReader.open(path).close()
    with pytest.raises(MalformedFrame, match="line 3: frame of 100 bytes is over the frame"):
        CassetteReader.open(path, budgets=Budgets(max_frame_bytes=64))
    edit_manifest(path, lambda d: d["budgets"].update(max_frame_bytes=50))
    with pytest.raises(MalformedFrame, match="over the frame budget \\(50 bytes\\)"):
        CassetteReader.open(path)


def test_an_over_long_line_is_refused_without_being_read_whole(tmp_path):
    """Today a 500 MB line was read whole (1-2 GB RSS). Lines are read with a bound (frame
    budget in base64, plus as much again and 1 MiB for the summary): here 2 MB, and a 40 MB
    line costs about that much memory, not 40 MB."""
    path = tmp_path / "c"
    cassette(path, budgets=Budgets(max_frame_bytes=400_000))
    data = (path / "frames.jsonl").read_bytes()
    long_line = b'{"conn":1,"dir":"c2s","proto":"kafka","raw":"' + b"A" * (40 << 20) + b'"}\n'
    reseal(path, data + long_line)
    tracemalloc.start()
    try:
        with pytest.raises(MalformedFrame, match="line 4: .* bytes or longer.* without reading"):
            CassetteReader.open(path)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak} bytes: the line was read whole"
    with pytest.raises(MalformedFrame, match="line 4"):
        verify(path)


def test_cli_errors_quote_the_cassette_escaped(tmp_path):
    path = tmp_path / "c"
    cassette(path)
    edit_manifest(path, lambda d: d.update(format="\x1b]0;pwned\x07rrlab.cassette/1"))
    proc = rrlab("inspect", str(path), cwd=tmp_path)
    assert proc.returncode == 1 and "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    assert "\\x1b]0;pwned\\x07" in proc.stderr


# -- inspect escapes what it prints --------------------------------------------------------------


def test_inspect_escapes_control_characters_everywhere(tmp_path):
    """Topic names, payload text, close reasons, routes: recorded bytes never reach the terminal
    as control characters (ESC sequences clear screens, set titles, fake output)."""
    path = tmp_path / "c"
    w = CassetteWriter.create(path)
    w.add_route("mqtt", "127.0.0.1:11883", "127.0.0.1:1883\x1b[2J")
    conn = w.open_connection("mqtt", "127.0.0.1:11883", "127.0.0.1:1883")
    payload = b"hello \x1b[31mred\x1b[0m \xc2\x9b6n bidi\xe2\x80\xae"
    topic = "t/\x1b]0;owned\x07/\u202e"
    body = len(topic.encode()).to_bytes(2, "big") + topic.encode() + payload
    raw = bytes([0x30, len(body)]) + body
    summary = {"packet": "PUBLISH", "topic": topic, "qos": 0, "payload_size": len(payload)}
    w.write_frame(conn, "c2s", "mqtt", summary, raw)
    w.write_frame(conn, "c2s", "mqtt", {"packet": "CONNECT", "client_id": "x\x1bc"}, b"\x10\x00")
    w.close_connection(conn, "client closed \x1b[1Afake line")
    w.finalize()
    for extra in ([], ["--payload", "text"], ["--payload", "hex"], ["--json"]):
        proc = rrlab("inspect", str(path), *extra, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        shown = proc.stdout
        for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert bad not in shown, (extra, bad)
        if extra != ["--payload", "hex"]:
            assert "owned" in shown  # escaped, still readable
        if extra == ["--json"]:
            doc = json.loads(shown)  # the same value, only written with escapes
            assert doc["frames"][0]["summary"]["topic"] == topic
    table = rrlab("inspect", str(path), "--payload", "text", cwd=tmp_path).stdout
    assert "t/\\x1b]0;owned\\x07/\\u202e" in table
    assert "\\x1b[31mred" in table and "client closed \\x1b[1Afake line" in table


def test_symlinked_replay_rules_are_refused(tmp_path):
    from rrlab.replayer.rules import load_rules
    from rrlab.rr.usage import UsageError

    path = tmp_path / "c"
    cassette(path)
    assert load_rules(path) == {
        "ignore_fields": (),
        "ignore_headers": (),
        "exact_clock_fields": (),
    }
    elsewhere = tmp_path / "rules.json"
    elsewhere.write_text('{"ignore_fields": ["secret.from.elsewhere"]}')
    (path / "replay-rules.json").symlink_to(elsewhere)
    with pytest.raises(UsageError, match="'replay-rules.json' is a symlink"):
        load_rules(path)
