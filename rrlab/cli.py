"""`rrlab`: the one command-line entry point. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

from rrlab.rr.usage import EXIT_USAGE, UsageError

#: subcommand -> module exposing `register(subparsers)`; imported lazily so `rrlab --help` is fast.
SUBCOMMANDS: dict[str, str] = {
    "brokers": "rrlab.brokers.cli",
    "proxy": "rrlab.proxy.cli",
    "record": "rrlab.proxy.record_cli",
    "serve": "rrlab.replayer.cli",
    "replay": "rrlab.replayer.replay_cli",
    "ci": "rrlab.replayer.replay_cli",
    "inspect": "rrlab.cassette_cli",
    "verify": "rrlab.cassette_cli",
    "migrate": "rrlab.cassette_cli",
    "diff": "rrlab.diff_cli",
    "arch": "rrlab.arch.cli",
}

#: one runnable example per command, shown under its --help (unless its module gives its own)
EXAMPLES: dict[str, str] = {
    "brokers": "rrlab brokers up kafka amqp mqtt   # Kafka: auto (Apache Kafka if java runs)\n"
    "  rrlab brokers up kafka --kafka-impl tansu   # the embedded binary, no Java\n"
    "  rrlab brokers status\n  rrlab brokers down",
    "proxy": "rrlab proxy --kafka 19092=127.0.0.1:9092 --amqp 15673=127.0.0.1:5672 "
    "--cassette cassettes/demo",
    "record": "rrlab record --kafka 19092=127.0.0.1:9092 --cassette cassettes/my-run "
    "--artifact out/my-run/aggregate.json -- python -m worker --driver kafka --out out/my-run",
    "serve": "rrlab serve --cassette cassettes/worker-amqp-rabbitmq",
    "replay": "rrlab replay --cassette cassettes/worker-kafka-tansu -- python -m worker "
    "--driver kafka --count 200 --seed 1 --out out/worker-kafka-tansu",
    "inspect": "rrlab inspect cassettes/worker-amqp-rabbitmq --api Basic.Publish --api body "
    "--payload text",
    "verify": "rrlab verify cassettes/worker-kafka-tansu --strict",
    "migrate": "rrlab migrate cassettes/*/",
    "diff": "rrlab diff cassettes/worker-mqtt-amqtt /tmp/again --ignore-field body.member_id",
    "arch": "rrlab arch check --json",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps example line breaks and shows every meaningful default (not None/False/empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and default not in (None, False, [], "", argparse.SUPPRESS)
            and action.option_strings
            and not isinstance(action, argparse._VersionAction)
        ):
            text += " (default: %(default)s)"
        return text


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("messaging-rr-lab")
    except PackageNotFoundError:  # a source tree without an install
        return "unknown"


def _polish(parser: argparse.ArgumentParser, name: str | None) -> None:
    """Our formatter and an example for `parser` and every nested subcommand parser."""
    parser.formatter_class = HelpFormatter
    if name in EXAMPLES and not parser.epilog:
        parser.epilog = "example:\n  " + EXAMPLES[name]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                _polish(sub, sub_name if parser.prog == "rrlab" else None)


class _VersionAction(argparse._VersionAction):
    """--version, its text looked up only when asked (importlib.metadata costs ~0.07 s)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        self.version = f"rrlab {_version()}"
        super().__call__(parser, namespace, values, option_string)


def build_parser(
    command: str | None = None,
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The `rrlab` parser. With `command` (a known subcommand) only its module is imported:
    `rrlab replay` should not pay for the proxy, the brokers and the cassette tools."""
    parser = argparse.ArgumentParser(
        prog="rrlab",
        description="Record and replay message-broker traffic (Kafka, AMQP 0-9-1, MQTT).",
        epilog="example:\n  rrlab brokers up amqp\n"
        "  rrlab record --amqp 15673=127.0.0.1:5672 --cassette cassettes/demo -- CMD\n"
        "  rrlab replay --cassette cassettes/demo -- CMD\n"
        "Run `rrlab COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [SUBCOMMANDS[command]] if command in SUBCOMMANDS else SUBCOMMANDS.values()
    for module_name in dict.fromkeys(modules):  # one module may own several
        importlib.import_module(module_name).register(sub)
    _polish(parser, None)
    return parser, sub


def _keep_hypothesis_out() -> None:
    """kio registers Hypothesis strategies when Hypothesis is importable, and importing it
    creates `.hypothesis/` in the working directory. The runtime never needs it: in a process
    that has not loaded it yet, make it unimportable; never under pytest, whose Hypothesis plugin
    imports it lazily (a test file calling main() first would break that plugin)."""
    if "hypothesis" not in sys.modules and "_pytest" not in sys.modules:
        sys.modules["hypothesis"] = None  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    _keep_hypothesis_out()
    given = sys.argv[1:] if argv is None else argv
    parser, sub = build_parser(given[0] if given else None)
    args, extra = parser.parse_known_args(argv)
    if extra:  # name the subcommand's usage, not the top level's
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = list(given)  # `replay` re-runs itself
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"rrlab {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
