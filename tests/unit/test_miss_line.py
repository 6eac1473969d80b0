"""A miss line on a terminal: values from a cassette or a client are escaped, never obeyed."""

from __future__ import annotations

from rrlab.replayer.report import Miss


def test_a_miss_line_escapes_control_characters() -> None:
    miss = Miss(
        proto="mqtt",
        live_conn=1,
        recorded_conn=2,
        api="PUBLISH",
        reason="topic differs: \x1b]0;owned\x07",
        live={},
        diff=['topic: recorded "a\x1b[2J" live "b"'],
    )
    line = miss.line()
    assert "\x1b" not in line and "\x07" not in line
    assert "\\x1b]0;owned\\x07" in line and '"a\\x1b[2J"' in line
    assert line.count("\n") == 1  # the head and one diff line, nothing a value could add
