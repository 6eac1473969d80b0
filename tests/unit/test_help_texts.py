"""Every option of every `rrlab` command says what it does (issue L.6: `replay --help` left
--match, --pace, --ignore-field, --report and --metrics undescribed)."""

from __future__ import annotations

import argparse

from rrlab.cli import build_parser


def _undescribed(parser: argparse.ArgumentParser, prog: str) -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if not any(c.dest == name and c.help for c in action._choices_actions):
                    found.append(f"{prog} {name} (the command itself)")
                found += _undescribed(sub, f"{prog} {name}")
        elif action.help in (None, "") and action.help is not argparse.SUPPRESS:
            found.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
    return found


def test_every_option_has_help_text() -> None:
    parser, _ = build_parser()
    assert _undescribed(parser, "rrlab") == []


def test_the_walk_sees_nested_commands() -> None:
    """The walk reaches `rrlab arch check` (a command under a command) and would see a gap."""
    parser, sub = build_parser()
    check = sub.choices["arch"]._subparsers._group_actions[0].choices["check"]
    check.add_argument("--undocumented")
    assert _undescribed(parser, "rrlab") == ["rrlab arch check --undocumented"]
