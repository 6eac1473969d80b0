"""Recording onto a disk that fills up (issue J.3), against a real MQTT broker.

The write error is a real one from the kernel, with no mount and no root: the proxy runs under
a file-size limit (RLIMIT_FSIZE), so once frames.jsonl reaches it, write(2) writes what fits
and then fails with EFBIG, as it fails with ENOSPC on a full disk (a 2 MiB tmpfs gives the
same lines with "disk full (ENOSPC)"). Before: every connection dropped with a `CRIT Unhandled
Error` traceback, chunks whose frames never reached the cassette were forwarded, the proxy
went on accepting, and `rrlab record` said only "command exited 1 ... nothing recorded".
"""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from proxy_harness import free_block

from rrlab.rr.cassette import CassetteReader, verify

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
FILE_LIMIT = 64 * 1024  # bytes any file the proxy writes may reach


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def _publish_qos1(port: int, seconds: float) -> tuple[int, bool]:
    """QoS 1 PUBLISHes through the proxy until it closes us (or `seconds`); (PUBACKs
    received, whether the proxy closed the connection)."""
    sock = socket.create_connection(("127.0.0.1", port))
    body = b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x04full"
    sock.sendall(bytes([0x10, len(body)]) + body)
    assert sock.recv(4)[:2] == b"\x20\x02"
    acks, closed = 0, threading.Event()

    def read_acks() -> None:
        nonlocal acks
        buf = b""
        sock.settimeout(10)
        try:
            while chunk := sock.recv(65536):
                buf += chunk
                while len(buf) >= 4:
                    assert buf[0] == 0x40, buf[:8]  # PUBACK
                    acks += 1
                    buf = buf[4:]
        except OSError:
            pass
        closed.set()

    reader = threading.Thread(target=read_acks, daemon=True)
    reader.start()
    packet_id, started = 0, time.monotonic()
    try:
        while not closed.is_set() and time.monotonic() - started < seconds:
            packet_id = packet_id % 65535 + 1
            payload = b"\x00\x01t" + packet_id.to_bytes(2, "big") + b"m" * 100
            sock.sendall(bytes([0x32, len(payload)]) + payload)
            time.sleep(0.001)
    except OSError:
        pass
    reader.join(15)
    sock.close()
    return acks, closed.is_set()


def test_a_full_disk_stops_the_proxy_with_one_error_and_loses_nothing(
    live_brokers, tmp_path: Path
) -> None:
    addrs = live_brokers("mqtt")
    port = free_block(1)
    cassette = tmp_path / "c"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rrlab", "proxy", f"--mqtt={port}={addrs['mqtt']}",
         "--cassette", str(cassette), "--write-root", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_limit_file_size,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if " listening " in line:
            break
    acks, closed = _publish_qos1(port, seconds=30)
    assert closed, "the proxy kept the connection open after its cassette stopped taking frames"
    try:
        code = proc.wait(10)  # it stops by itself
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    out, err = proc.communicate()
    assert code == 1, out + err
    assert "Traceback" not in err and "Unhandled" not in err, err
    errors = [ln for ln in err.splitlines() if " ERROR " in ln or " CRIT " in ln]
    assert len(errors) == 1, err
    assert "cassette_write_failed" in errors[0] and str(cassette) in errors[0]
    assert "file too large (EFBIG" in errors[0] and "rrlab verify --repair" in errors[0]
    assert not list(cassette.glob(".*.tmp"))

    report = verify(cassette, repair=True)  # repairable, keeping every whole frame
    frames = list(CassetteReader.open(cassette).frames())
    assert report.frames == len(frames) > 100
    publishes = sum(1 for f in frames if f.summary.get("packet") == "PUBLISH")
    pubacks = sum(1 for f in frames if f.summary.get("packet") == "PUBACK")
    assert pubacks >= acks > 50  # every PUBACK the client saw is recorded
    assert publishes >= pubacks  # and each PUBLISH the broker acknowledged


def test_record_on_a_full_disk_says_so_and_exits_non_zero(live_brokers, tmp_path: Path) -> None:
    addrs = live_brokers("mqtt")
    port = free_block(1)
    here = str(Path(__file__).parent)
    client = (
        f"import sys; sys.path.insert(0, {here!r}); "
        f"from test_disk_full_live import _publish_qos1; _publish_qos1({port}, 20)"
    )
    done = subprocess.run(
        [sys.executable, "-m", "rrlab", "record", f"--mqtt={port}={addrs['mqtt']}",
         "--cassette", str(tmp_path / "c"), "--write-root", str(tmp_path),
         "--", sys.executable, "-c", client],
        cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size,
    )  # fmt: skip
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("rrlab record: the proxy could not write the cassette: "), done.stderr
    assert "file too large (EFBIG)" in last and "left unchanged" in last
    assert "nothing to repair" in last  # the proxy's repair advice named the discarded staging
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "c").exists()
