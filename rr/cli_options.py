"""argparse options that several `rrlab` subcommands share, defined once."""

from __future__ import annotations

import argparse


def add_write_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--write-root",
        action="append",
        default=[],
        metavar="DIR",
        help="add a write root to the profile's (tests, scratch runs)",
    )


def add_allow_upstream(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-upstream",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="add an upstream to the profile's allow-list (tests, private brokers)",
    )
