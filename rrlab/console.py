"""What the long-running commands (`rrlab proxy`, `rrlab serve`) print, in one place.

Two formats. `human` (the default): the command's own lines on stdout ("rrlab proxy: listening
..."), log events as short lines on stderr (time, level, event, message; warnings and errors
coloured on a terminal), and on a terminal one progress line that every other line clears and
redraws, so nothing is ever glued onto it. `json`: one JSON object per line and nothing else
(stdout stays quiet), for machines. `--log-file` adds JSON lines to a file in either format.

Repeated warnings and errors (a client reconnecting to a dead upstream hundreds of times a
second) are shown once per `REPEAT_WINDOW_S` and then counted ("... 2,801 more in 10 s"), on
stdout/stderr in either format; the log file keeps every event. Twisted's own accept failures
(too many open files) become `accept_failed` errors here, counted for the commands' reports.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TextIO

from rrlab.rr.usage import UsageError

FORMATS = ("human", "json")

#: seconds in which warnings and errors of one kind are shown once, the rest counted
REPEAT_WINDOW_S = 10.0

#: twisted.logger's level names (LogLevel.NAME.name): compared by name, so that a command that
#: never logs through Twisted (`rrlab replay`'s own process) never imports it (0.15 s)
_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR", "critical": "CRIT"}
_IMPORTANT = frozenset({"warn", "error", "critical"})
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
        from twisted.logger import formatEvent

        level = _LEVELS.get(_level_name(event), "INFO")
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


def _level_name(event: dict[str, Any]) -> str:
    """The event's twisted.logger level by name (`info` when it has none)."""
    return getattr(event.get("log_level"), "name", "info")


def event_record(event: dict[str, Any]) -> dict[str, Any]:
    """A twisted.logger event as a flat JSON object: time, level, namespace, text, its fields."""
    from twisted.logger import formatEvent

    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": round(float(event.get("log_time") or time.time()), 6),
        "level": getattr(level, "name", None) or str(level),
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


def accept_failure(event: dict[str, Any]) -> dict[str, Any] | None:
    """Twisted's log event for a connection it could not accept (`twisted.internet.tcp`: out
    of file descriptors, the client closed unserved), as our `accept_failed` error event;
    None for any other event. Its other EMFILE-recovery chatter becomes an empty dict."""
    fmt = event.get("log_format") or ""
    if fmt.startswith("EMFILE recovery: Closed socket"):
        code = "EMFILE"
    elif fmt.startswith("Could not accept new connection"):
        code = str(event.get("acceptError") or "accept error")
    elif fmt.startswith(("EMFILE encountered", "Re-reserving EMFILE")):
        return {}
    else:
        return None
    from twisted.logger import LogLevel

    number = getattr(errno, code, None)
    words = os.strerror(number).lower() if isinstance(number, int) else code
    return {
        "log_level": LogLevel.error,
        "log_namespace": "rrlab.accept",
        "log_time": event.get("log_time") or time.time(),
        "log_format": "cannot accept a connection: {words} ({errno}); the client was closed "
        "unserved - raise the open-file limit (ulimit -n) or use fewer connections",
        "event": "accept_failed",
        "errno": code,
        "words": words,
    }


class LogObserver:
    """A twisted.logger observer writing human lines or JSON lines (and JSON to a log file).

    In human format, events named in `said` are not repeated (the command printed its own line
    for them), `quiet` ones (per-connection chatter) go only to the log file, and events without
    an `event` name below warning level (Twisted's own chatter) are dropped from the terminal.

    Warnings and errors of one kind (namespace, event name, message template) are shown once
    per `window` seconds on the console (the log file gets every one); the rest are counted
    and said in one line when the window ends
    (`call_later`, e.g. the reactor's, makes that happen on time; else at the next event and
    at `flush`).
    """

    def __init__(
        self,
        console: Console,
        *,
        log_file: TextIO | None = None,
        said: Collection[str] = (),
        quiet: Collection[str] = (),
        window: float = REPEAT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
    ) -> None:
        self.console = console
        self.log_file = log_file
        self.said = frozenset(said)
        self.quiet = frozenset(quiet)
        self.warnings = 0  # warning, error and critical events seen (for a closing line)
        self.accept_failures = 0  # connections Twisted could not accept (accept_failed)
        self.window = window
        self.clock = clock
        self.call_later = call_later
        # kind -> [window start, events held back, the last of them]
        self._repeats: dict[tuple[Any, ...], list[Any]] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        translated = accept_failure(event)
        if translated is not None:
            if not translated:
                return
            event = translated
            self.accept_failures += 1
        important = _level_name(event) in _IMPORTANT
        self.warnings += important
        record: dict[str, Any] | None = None
        if self.log_file is not None:  # the file keeps every event
            record = event_record(event)
            self.log_file.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            self.log_file.flush()
        now = self.clock()
        if self._repeats:
            self._say_repeats(now)
        if important:
            kind = (event.get("log_namespace"), event.get("event"), event.get("log_format"))
            held = self._repeats.get(kind)
            if held is not None:  # shown already in this window: count it
                held[1] += 1
                held[2] = event
                if held[1] == 1 and self.call_later is not None:
                    self.call_later(max(0.0, held[0] + self.window - now), self._on_time)
                return
            self._repeats[kind] = [now, 0, None]
        self._show(event, record)

    def flush(self) -> None:
        """Say every count still held back (at exit)."""
        self._say_repeats(None)

    def _on_time(self) -> None:
        self._say_repeats(self.clock())

    def _say_repeats(self, now: float | None) -> None:
        """One line per kind whose window ended (every kind when `now` is None)."""
        for kind, (start, count, last) in list(self._repeats.items()):
            if now is not None and now - start < self.window:
                continue
            del self._repeats[kind]
            if count:
                seconds = self.window if now is not None else (self.clock() - start)
                self._show(_repeat_event(last, count, seconds))

    def _show(self, event: dict[str, Any], record: dict[str, Any] | None = None) -> None:
        """The event on the console (human line or JSON line), as the format decides."""
        level = _level_name(event)
        important = level in _IMPORTANT
        if self.console.json:
            self.console.event(record or event_record(event))
            return
        name = event.get("event")
        if name in self.said or name in self.quiet or (name is None and not important):
            return
        if level == "debug":
            return
        self.console._line(self.console.err, self.console.human_line(event))


def _repeat_event(last: dict[str, Any], count: int, seconds: float) -> dict[str, Any]:
    """The line that stands for `count` events like `last` held back over `seconds`."""
    from twisted.logger import LogLevel, formatEvent

    fields = {k: v for k, v in last.items() if not k.startswith("log_")}
    return {
        **fields,
        "log_level": last.get("log_level", LogLevel.warn),
        "log_namespace": last.get("log_namespace"),
        "log_time": time.time(),
        "log_format": "... {repeated:,} more in {window_s:g} s; last: {last_text}",
        "repeated": count,
        "window_s": max(1, round(seconds)),
        "last_text": formatEvent(last).replace("\n", " "),
    }


def start_logging(
    console: Console,
    log_path: Path | None = None,
    *,
    said: Collection[str] = (),
    quiet: Collection[str] = (),
    reactor: Any = None,
) -> LogObserver:
    """Route every twisted.logger event through one `LogObserver` (call once per process).
    With `reactor`, counts of repeated lines are said as their window ends."""
    try:
        stream = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"cannot write the log file {log_path}: {exc.strerror}") from None
    observer = LogObserver(
        console,
        log_file=stream,
        said=said,
        quiet=quiet,
        call_later=reactor.callLater if reactor is not None else None,
    )
    from twisted.logger import globalLogBeginner

    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    return observer
