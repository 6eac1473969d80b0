"""What the long-running commands (`rrlab proxy`, `rrlab serve`) print, in one place.

Two formats. `human` (the default): the command's own lines on stdout ("rrlab proxy: listening
..."), log events as short lines on stderr (time, level, event, message; warnings and errors
coloured on a terminal), and on a terminal one progress line that every other line clears and
redraws, so nothing is ever glued onto it. `json`: one JSON object per line and nothing else
(stdout stays quiet), for machines. `--log-file` adds JSON lines to a file in either format.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any, TextIO

from twisted.logger import LogLevel, formatEvent, globalLogBeginner

FORMATS = ("human", "json")

_LEVELS = {
    LogLevel.debug: "DEBUG",
    LogLevel.info: "INFO",
    LogLevel.warn: "WARN",
    LogLevel.error: "ERROR",
    LogLevel.critical: "CRIT",
}
_COLOURS = {"WARN": "\x1b[33m", "ERROR": "\x1b[31;1m", "CRIT": "\x1b[31;1m"}
_RESET = "\x1b[0m"
_CLEAR = "\r\x1b[K"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _silence(stream: TextIO) -> None:
    """Point a stream whose reader has gone at /dev/null (no error at every later write, nor
    at exit when Python flushes it)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


class Console:
    """stdout/stderr of one command: plain lines, a redrawn progress line, the log format."""

    def __init__(
        self, out: TextIO | None = None, err: TextIO | None = None, *, fmt: str = "human"
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.fmt = fmt
        self.colour = _isatty(self.err) and not os.environ.get("NO_COLOR")
        self._progress = ""  # the progress text currently drawn on `out`

    @property
    def json(self) -> bool:
        return self.fmt == "json"

    def _line(self, stream: TextIO, text: str) -> None:
        try:
            if self._progress:
                self.out.write(_CLEAR)
                self.out.flush()
            stream.write(text + "\n")
            stream.flush()
            if self._progress:
                self.out.write(self._progress)
                self.out.flush()
        except BrokenPipeError:  # `rrlab proxy ... | head`: the reader left, the work goes on
            _silence(stream)

    def say(self, text: str) -> None:
        """A line for the person running the command (stdout; JSON mode carries it as an event)."""
        if not self.json:
            self._line(self.out, text)

    def note(self, text: str, event: str) -> None:
        """A line for the person, or (JSON mode) an info event `event` carrying it as text."""
        if self.json:
            self.event({"event": event, "level": "info", "text": text, "time": time.time()})
        else:
            self._line(self.out, text)

    def warn(self, text: str) -> None:
        """A line that must be seen (stderr), in both formats (JSON: a `warning` event)."""
        if self.json:
            self.event({"event": "warning", "level": "warn", "text": text, "time": time.time()})
        else:
            self._line(self.err, text)

    def event(self, record: dict[str, Any]) -> None:
        """One JSON line on stderr (JSON mode only)."""
        if self.json:
            self._line(self.err, json.dumps(record, sort_keys=True, default=str))

    @property
    def shows_progress(self) -> bool:
        return not self.json and _isatty(self.out)

    def progress(self, text: str) -> None:
        """Draw (or redraw) the progress line; only on a terminal, never in JSON mode."""
        if not self.shows_progress:
            return
        self._progress = "\r" + text + "\x1b[K"
        self.out.write(self._progress)
        self.out.flush()

    def end_progress(self) -> None:
        """Clear the progress line (the closing line replaces it)."""
        if self._progress:
            self._progress = ""
            self.out.write(_CLEAR)
            self.out.flush()

    def human_line(self, event: dict[str, Any]) -> str:
        level = _LEVELS.get(event.get("log_level"), "INFO")
        stamp = time.strftime("%H:%M:%S", time.localtime(event.get("log_time") or time.time()))
        text = formatEvent(event).replace("\n", " ")
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}: {failure.getErrorMessage()}" if text else failure.getErrorMessage()
        name = event.get("event")
        tag = f"{level:<5}"
        if self.colour and level in _COLOURS:
            tag = f"{_COLOURS[level]}{tag}{_RESET}"
        return f"{stamp} {tag} {name + ': ' if name else ''}{text}"


def event_record(event: dict[str, Any]) -> dict[str, Any]:
    """A twisted.logger event as a flat JSON object: time, level, namespace, text, its fields."""
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": round(float(event.get("log_time") or time.time()), 6),
        "level": level.name if isinstance(level, type(LogLevel.info)) else str(level),
        "namespace": event.get("log_namespace"),
        "text": formatEvent(event),
    }
    for key, value in event.items():
        if key.startswith("log_") or key.startswith("_"):
            continue
        record[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return record


class LogObserver:
    """A twisted.logger observer writing human lines or JSON lines (and JSON to a log file).

    In human format, events named in `said` are not repeated (the command printed its own line
    for them), `quiet` ones (per-connection chatter) go only to the log file, and events without
    an `event` name below warning level (Twisted's own chatter) are dropped from the terminal.
    """

    def __init__(
        self,
        console: Console,
        *,
        log_file: TextIO | None = None,
        said: Collection[str] = (),
        quiet: Collection[str] = (),
    ) -> None:
        self.console = console
        self.log_file = log_file
        self.said = frozenset(said)
        self.quiet = frozenset(quiet)
        self.warnings = 0  # warning, error and critical events seen (for a closing line)

    def __call__(self, event: dict[str, Any]) -> None:
        record: dict[str, Any] | None = None
        level = event.get("log_level", LogLevel.info)
        important = level in (LogLevel.warn, LogLevel.error, LogLevel.critical)
        self.warnings += important
        if self.log_file is not None:
            record = event_record(event)
            self.log_file.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            self.log_file.flush()
        if self.console.json:
            self.console.event(record or event_record(event))
            return
        name = event.get("event")
        if name in self.said or name in self.quiet or (name is None and not important):
            return
        if level == LogLevel.debug:
            return
        self.console._line(self.console.err, self.console.human_line(event))


def start_logging(
    console: Console,
    log_path: Path | None = None,
    *,
    said: Collection[str] = (),
    quiet: Collection[str] = (),
) -> LogObserver:
    """Route every twisted.logger event through one `LogObserver` (call once per process)."""
    stream = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
    observer = LogObserver(console, log_file=stream, said=said, quiet=quiet)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    return observer
