"""rrlab.console: human lines, JSON lines, and a progress line nothing is ever glued onto."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select

from twisted.logger import LogLevel

from rrlab.console import Console, LogObserver, event_record


def _event(level: LogLevel = LogLevel.info, fmt: str = "", **fields: object) -> dict:
    return {
        "log_level": level,
        "log_format": fmt,
        "log_time": 1_700_000_000.0,
        "log_namespace": "rrlab.proxy",
        **fields,
    }


def test_human_line_has_time_level_event_and_message() -> None:
    err = io.StringIO()
    obs = LogObserver(Console(io.StringIO(), err))
    obs(_event(LogLevel.error, "upstream {upstream} refused", event="upstream_failed",
               upstream="127.0.0.1:9092"))  # fmt: skip
    line = err.getvalue()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d ERROR upstream_failed: upstream 127\.0\.0\.1:9092 refused\n", line
    ), line
    assert "{" not in line and "__class_uuid__" not in line


def test_human_format_hides_chatter_and_lines_already_said() -> None:
    err = io.StringIO()
    obs = LogObserver(Console(io.StringIO(), err), said={"listening"}, quiet={"connection_open"})
    obs(_event(fmt="listening", event="listening"))
    obs(_event(fmt="conn 1 open", event="connection_open"))
    obs(_event(fmt="Starting factory"))  # Twisted's own info chatter: no event name
    assert err.getvalue() == ""
    obs(_event(LogLevel.warn, "something odd"))  # unnamed, but a warning: shown
    assert "WARN  something odd" in err.getvalue()


def test_json_format_is_one_flat_object_per_line_and_stdout_stays_quiet() -> None:
    out, err, log_file = io.StringIO(), io.StringIO(), io.StringIO()
    console = Console(out, err, fmt="json")
    obs = LogObserver(console, log_file=log_file, said={"listening"})
    console.say("rrlab proxy: listening kafka 127.0.0.1:19092 -> 127.0.0.1:9092")
    obs(_event(fmt="listening {proto}", event="listening", proto="kafka", obj=object()))
    console.warn("MISS kafka Produce")
    assert out.getvalue() == ""
    records = [json.loads(line) for line in err.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["listening", "warning"]
    assert records[0]["text"] == "listening kafka" and records[0]["level"] == "info"
    assert records[0]["proto"] == "kafka" and isinstance(records[0]["obj"], str)
    assert not any(k.startswith("log_") for k in records[0])
    assert json.loads(log_file.getvalue())["event"] == "listening"  # the file: every event


def test_event_record_keeps_a_failure_traceback() -> None:
    from twisted.python.failure import Failure

    try:
        raise ValueError("boom")
    except ValueError:
        failure = Failure()
    record = event_record(_event(LogLevel.critical, "session failed", log_failure=failure))
    assert record["level"] == "critical" and "ValueError: boom" in record["traceback"]


def test_progress_on_a_terminal_is_cleared_and_redrawn_around_every_line() -> None:
    master, slave = pty.openpty()
    try:
        term = os.fdopen(slave, "w", encoding="utf-8", closefd=False)
        console = Console(term, term)
        console.progress("12 frames  0.0 MB  1 open / 1 connections")
        LogObserver(console)(_event(LogLevel.error, "upstream lost", event="upstream_lost"))
        console.say("rrlab proxy: listening mqtt 127.0.0.1:11883 -> 127.0.0.1:1883")
        console.end_progress()
        term.flush()
        seen = ""
        while select.select([master], [], [], 0.5)[0]:  # the pty hands it over in pieces
            seen += os.read(master, 65536).decode()
    finally:
        os.close(master)
        os.close(slave)
    # every line starts on a cleared row, and the progress comes back after it
    clear, progress = "\r\x1b[K", "12 frames  0.0 MB  1 open / 1 connections"
    assert seen.startswith("\r" + progress + "\x1b[K")  # drawn over itself, rest of row wiped
    chunks = seen.split(clear)
    assert chunks[0] == "\r" + progress + "\x1b[K"
    assert "\x1b[31;1mERROR\x1b[0m upstream_lost: upstream lost" in chunks[1]  # stands out
    assert chunks[1].endswith("\r\n\r" + progress + "\x1b[K")
    assert chunks[2].startswith("rrlab proxy: listening mqtt")
    assert chunks[-1] == ""  # the progress line is wiped at the end


def test_no_progress_when_not_a_terminal() -> None:
    out = io.StringIO()
    console = Console(out, io.StringIO())
    console.progress("1 frames")
    console.say("line")
    assert out.getvalue() == "line\n"


def test_a_reader_that_left_does_not_stop_the_command() -> None:
    """`rrlab proxy ... | head`: once head exits, lines go nowhere instead of raising."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    out = os.fdopen(write_end, "w")
    console = Console(out, out)
    console.say("rrlab proxy: listening")  # BrokenPipeError inside: silenced
    console.warn("later line")
    out.write("still writable\n")
    out.flush()  # now /dev/null: no error at exit either
    out.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[tuple[float, object]] = []

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, fn: object) -> None:
        self.calls.append((self.now + delay, fn))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [c for c in self.calls if c[0] <= self.now]
        self.calls = [c for c in self.calls if c[0] > self.now]
        for _when, fn in due:
            fn()  # type: ignore[operator]


def _refused(n: int) -> dict:
    fmt = "upstream {upstream} refused a {proto} connection: conn {n}"
    return _event(LogLevel.error, fmt, event="upstream_failed", upstream="127.0.0.1:9092",
                  proto="kafka", n=n)  # fmt: skip


def test_repeated_errors_are_shown_once_then_counted_per_window() -> None:
    """A Kafka client reconnecting to a dead upstream printed 2,802 ERROR lines in 10 s (J.6)."""
    err, log_file, clock = io.StringIO(), io.StringIO(), _Clock()
    obs = LogObserver(Console(io.StringIO(), err), log_file=log_file, clock=clock,
                      call_later=clock.call_later)  # fmt: skip
    for n in range(2802):
        obs(_refused(n))
        clock.advance(0.003)
    obs(_event(LogLevel.warn, "something else", event="other"))  # another kind: shown
    assert len(err.getvalue().splitlines()) == 2
    clock.advance(2.0)  # the window ends: one line says how many were held back
    lines = err.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert "upstream_failed: upstream 127.0.0.1:9092 refused a kafka connection: conn 0" in lines[0]
    assert re.search(r"ERROR upstream_failed: \.\.\. 2,801 more in 10 s; last: .*conn 2801$",
                     lines[2]), lines[2]  # fmt: skip
    records = [json.loads(line) for line in log_file.getvalue().splitlines()]
    assert len(records) == 2803 and "repeated" not in records[-1]  # the file: every event
    obs(_refused(9999))  # a new window: shown again
    assert len(err.getvalue().splitlines()) == 4


def test_counts_still_held_are_said_at_exit() -> None:
    err, clock = io.StringIO(), _Clock()
    obs = LogObserver(Console(io.StringIO(), err), clock=clock)
    for n in range(3):
        obs(_refused(n))
    clock.now = 2.4
    obs.flush()
    assert err.getvalue().splitlines()[-1].endswith("... 2 more in 2 s; last: upstream "
                                                    "127.0.0.1:9092 refused a kafka connection: "
                                                    "conn 2")  # fmt: skip
    assert obs.warnings == 3


def test_twisteds_accept_failures_become_counted_errors() -> None:
    """Out of file descriptors, Twisted closes each new client unserved and says so at info
    level, which the terminal never showed (J.2)."""
    err = io.StringIO()
    obs = LogObserver(Console(io.StringIO(), err))
    chatter = {"log_namespace": "twisted.internet.tcp.Port", "log_level": LogLevel.info}
    obs({**chatter, "log_format": "EMFILE encountered; releasing reserved file descriptor."})
    for port in (40001, 40002):
        obs({**chatter, "log_format": "EMFILE recovery: Closed socket from {address}",
             "address": ("127.0.0.1", port)})  # fmt: skip
    obs({**chatter, "log_format": "Re-reserving EMFILE recovery file descriptor."})
    lines = err.getvalue().splitlines()
    assert obs.accept_failures == 2 and len(lines) == 1, lines
    assert (
        "ERROR accept_failed: cannot accept a connection: too many open files (EMFILE)" in lines[0]
    )
