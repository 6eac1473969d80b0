"""argparse options that several `rrlab` subcommands share, defined once."""

from __future__ import annotations

import argparse

from rrlab.rr.policy import COMPACT_OVER_BYTES, CONFIG_KEY, CONFIG_WHERE, PROFILES

from .console import FORMATS

PROTOS = ("kafka", "amqp", "mqtt")
ARTICLE = {"kafka": "a Kafka", "amqp": "an AMQP 0-9-1", "mqtt": "an MQTT"}
ROUTE_EXAMPLES = {
    "kafka": "19092=127.0.0.1:9092",
    "amqp": "15673=127.0.0.1:5672",
    "mqtt": "11883=127.0.0.1:1883",
}


def add_routes(parser: argparse.ArgumentParser) -> None:
    """--kafka/--amqp/--mqtt LISTEN=UPSTREAM, each any number of times (proxy, record)."""
    for proto in PROTOS:
        parser.add_argument(
            f"--{proto}",
            action="append",
            default=[],
            metavar="LISTEN=UPSTREAM",
            help=f"{ARTICLE[proto]} route (any number), e.g. {ROUTE_EXAMPLES[proto]}",
        )


def add_cassette(
    parser: argparse.ArgumentParser, *, required: bool = True, help: str = "cassette directory"
) -> None:
    parser.add_argument("--cassette", required=required, metavar="DIR", help=help)


def add_recording(parser: argparse.ArgumentParser, *, rewrite: str) -> None:
    """What a recording is told (proxy, record): its routes, cassette, profile and --mode;
    `rewrite` says what --mode rewrite replaces when."""
    add_routes(parser)
    add_cassette(parser)
    add_record_profile(parser)
    parser.add_argument(
        "--mode",
        default="once",
        choices=("once", "rewrite"),
        help=f"once: refuse an existing cassette; rewrite: {rewrite}",
    )
    parser.add_argument(
        "--compact-over",
        metavar="BYTES|never|always",
        help="once finalized, store the cassette compacted (gzipped, format 4) when its "
        f"frames.jsonl is over BYTES (profile default {COMPACT_OVER_BYTES}: a diff nobody "
        "reads); `rrlab migrate --expand` gives back the readable files",
    )


def add_record_profile(parser: argparse.ArgumentParser) -> None:
    """--profile of a recording, its default's allow-list and write roots shown."""
    record = PROFILES["os_record"]
    parser.add_argument(
        "--profile",
        default="os_record",
        help=f"policy profile, one of {', '.join(sorted(PROFILES))} (default %(default)s: "
        f"upstreams {', '.join(record.upstream_allow)}; "
        f"write roots {', '.join(str(r) for r in record.write_roots)}, plus the project's "
        f"{CONFIG_KEY}); it sets the upstream allow-list, write roots and budgets",
    )


def add_write_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--write-root",
        action="append",
        default=[],
        metavar="DIR",
        help="add a write root to the profile's, any number of times (tests, scratch runs); "
        f'a project lists its own once as {CONFIG_KEY} = ["tests/cassettes"] in '
        f"{CONFIG_WHERE}",
    )


def add_allow_upstream(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-upstream",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="add an upstream to the profile's allow-list (tests, private brokers)",
    )


def add_paths(parser: argparse.ArgumentParser, flag: str, help: str) -> None:
    """`flag PATH [PATH ...]`, any number of times, gathered into one list (record, replay)."""
    parser.add_argument(flag, action="extend", nargs="+", default=[], metavar="PATH", help=help)


def add_command_argv(parser: argparse.ArgumentParser, what: str) -> None:
    """The command after `--` that record and replay run."""
    parser.add_argument("cmd", nargs="*", metavar="-- CMD", help=f"the command to {what}")


def add_logging(parser: argparse.ArgumentParser, *, stdout: str, stderr: str) -> None:
    """--log-format and --log-file of a long-running server (proxy, serve); `stdout` and
    `stderr` say what its human lines are."""
    parser.add_argument(
        "--log-format",
        default="human",
        choices=FORMATS,
        help=f"human: readable lines (stdout: {stdout}; stderr: {stderr}); "
        "json: one JSON object per line on stderr and nothing on stdout",
    )
    parser.add_argument(
        "--log-file", metavar="PATH", help="also write every event as JSON lines to PATH"
    )
