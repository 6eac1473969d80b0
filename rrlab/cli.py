"""`rrlab`: the one command-line entry point. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

from rr.usage import EXIT_USAGE, UsageError

#: subcommand -> module exposing `register(subparsers)`; imported lazily so `rrlab --help` is fast.
SUBCOMMANDS: dict[str, str] = {
    "brokers": "brokers.cli",
    "proxy": "proxy.cli",
    "record": "proxy.record_cli",
    "serve": "replayer.cli",
    "replay": "replayer.replay_cli",
    "inspect": "rr.cassette_cli",
    "verify": "rr.cassette_cli",
    "arch": "rr.arch.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rrlab",
        description="Record and replay message-broker traffic (Kafka, AMQP 0-9-1, MQTT).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in dict.fromkeys(SUBCOMMANDS.values()):  # one module may own several
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `replay` re-runs itself
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"rrlab {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
