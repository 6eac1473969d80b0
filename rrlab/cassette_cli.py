"""`rrlab inspect DIR` (connections and frames as a table or canonical JSON),
`rrlab verify DIR [--repair]` and `rrlab migrate DIR...` (a format 1 cassette rewritten in the
current format). Errors are one line; exit 0 ok, 1 bad cassette, 2 usage.

inspect shows what the decoder knows (topic/partition/record count/first key, exchange/routing
key/queue, MQTT topics in full), optionally each frame's payload (text, Kafka records decoded
one by one, or a hex dump), then per connection what a replay does with it (the values it
would bind, the deliveries it holds until their publish), and reads a
crashed recording without changing it (a repaired copy in a temporary directory). verify warns
about connections whose recording broke (framing, rewrite, redaction; `--strict`: exit 1)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Iterable
from typing import Any, TextIO

from rrlab.rr.canonical import dumps
from rrlab.rr.cassette import (
    CassetteError,
    CassetteLocked,
    CassetteNotFound,
    CassetteReader,
    FrameRecord,
    NotFinalized,
    verify,
)
from rrlab.rr.cassette.errors import printable
from rrlab.rr.cassette.format import (
    CONNECTIONS_JOURNAL,
    FRAMES_NAME,
    MANIFEST_NAME,
    RAW_NAME,
    TIMING_NAME,
    ConnectionInfo,
    Manifest,
)
from rrlab.rr.cassette.migrate import migrate
from rrlab.rr.cassette.paths import CassetteDir
from rrlab.rr.cassette.reader import load_manifest
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols import protocol_for
from rrlab.rr.protocols.base import clip
from rrlab.rr.protocols.mqtt.normalize import correlation_data
from rrlab.rr.replay.bindings import Origin, Recognizer, binary_text, shown
from rrlab.rr.replay.recording import Recording
from rrlab.rr.replay.waits import Wait, delivery_waits
from rrlab.rr.usage import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, UsageError

ARROWS = {"c2s": "->", "s2c": "<-"}
#: columns the per-connection replay section wraps its lists at
WIDTH = 100


def register(sub: argparse._SubParsersAction) -> None:
    """Add `inspect` and `verify` (idempotent: SUBCOMMANDS maps both names to this module)."""
    if "inspect" not in sub.choices:
        p = sub.add_parser("inspect", help="show a cassette's connections and frames")
        p.add_argument("cassette", metavar="DIR", help="cassette directory")
        p.add_argument("--conn", type=int, metavar="N", help="only connection N")
        p.add_argument(
            "--api",
            action="append",
            default=[],
            metavar="NAME",
            help="only frames of this API/method/packet (e.g. Produce, Basic.Publish, PUBLISH; "
            "case-insensitive, repeatable)",
        )
        p.add_argument(
            "--payload",
            choices=("text", "hex"),
            help="print each frame's payload below it (message body where the protocol has one, "
            "Kafka records decoded with key, headers and value, else the frame; credentials "
            "already redacted): text, or a hex dump like tcpdump -X",
        )
        p.add_argument("--json", action="store_true", help="canonical JSON instead of tables")
        p.set_defaults(func=run_inspect)
    if "verify" not in sub.choices:
        p = sub.add_parser("verify", help="check a cassette's integrity (or finish a crashed one)")
        p.add_argument("cassette", metavar="DIR", help="cassette directory")
        p.add_argument(
            "--repair",
            action="store_true",
            help="finalize a crashed recording: keep every whole frame, drop a torn last line",
        )
        p.add_argument(
            "--strict",
            action="store_true",
            help="refuse a repaired cassette, or one with a connection whose recording broke "
            "(exit 1): replay-only CI trusts clean finalized ones only",
        )
        p.set_defaults(func=run_verify)
    if "migrate" not in sub.choices:
        p = sub.add_parser(
            "migrate",
            help="rewrite older-format cassettes in the current format (times out of "
            "the frame lines), checked first; frames and artifacts unchanged",
        )
        p.add_argument("cassettes", nargs="+", metavar="DIR", help="cassette directories")
        storage = p.add_mutually_exclusive_group()
        storage.add_argument(
            "--compact",
            dest="storage",
            action="store_const",
            const="compact",
            help="store them compacted (gzipped frames, format 4), as a recording whose "
            "frames.jsonl is over the --compact-over threshold is",
        )
        storage.add_argument(
            "--expand",
            dest="storage",
            action="store_const",
            const="plain",
            help="give back a compacted cassette's plain format 3 files (readable lines), "
            "exactly those it was compacted from",
        )
        p.set_defaults(func=run_migrate)


def _fail(command: str, exc: CassetteError) -> int:
    """One line; exit 2 for no cassette or another writer holding it, else 1 (a bad one)."""
    print(f"rrlab {command}: {exc}", file=sys.stderr)
    return EXIT_USAGE if isinstance(exc, CassetteNotFound | CassetteLocked) else EXIT_MISMATCH


def run_verify(args: argparse.Namespace) -> int:
    try:
        report = verify(args.cassette, repair=args.repair, strict=args.strict)
    except CassetteError as exc:
        return _fail("verify", exc)
    print(printable(report.summary()))
    broken = broken_connections(load_manifest(args.cassette))
    for conn, reason in broken:
        print(
            printable(
                f"rrlab verify: warning: connection {conn.id} ({conn.proto.value}): recording "
                f"broke: {reason}"
            ),
            file=sys.stderr,
        )
    if broken and args.strict:
        print(
            f"rrlab verify: {len(broken)} connections broken (--strict): re-record them",
            file=sys.stderr,
        )
        return EXIT_MISMATCH
    return EXIT_OK


def run_migrate(args: argparse.Namespace) -> int:
    code = EXIT_OK
    for path in args.cassettes:
        try:
            report = migrate(path, getattr(args, "storage", None))
        except CassetteError as exc:
            code = max(code, _fail("migrate", exc))
            continue
        print(printable(report.summary()))
    return code


#: close reasons that mean frames of a connection are missing from the cassette
_BROKEN = re.compile(
    r"recording stopped|framing error|rewrite failed|redaction failed|decoding failed|"
    r"partial frame not recorded"
)


def broken_connections(m: Manifest) -> list[tuple[ConnectionInfo, str]]:
    """Connections whose recording broke, with their close reason."""
    return [
        (c, c.close_reason)
        for c in m.connections
        if c.close_reason and _BROKEN.search(c.close_reason)
    ]


def _open_read_only(path: str, stack: list[str]) -> CassetteReader:
    """The cassette, or for a crashed recording a repaired copy (the original is not touched)."""
    try:
        return CassetteReader.open(path, check_artifacts=False)
    except NotFinalized:
        pass
    tmp = tempfile.mkdtemp(prefix="rrlab-inspect-")
    stack.append(tmp)
    copy = os.path.join(tmp, "cassette")
    _copy_recording(path, copy)
    report = verify(copy, repair=True)
    print(
        printable(
            f"rrlab inspect: {path} is a crashed recording (not finalized); shown as "
            f"`rrlab verify --repair` would finalize it (dropping a torn tail of "
            f"{report.dropped_bytes} bytes); the cassette itself is unchanged"
        ),
        file=sys.stderr,
    )
    return CassetteReader.open(copy, check_artifacts=False)


def _copy_recording(src: str, dest: str) -> None:
    """The files a repair reads (manifest, frames, connection journal), each read inside the
    cassette without following a link (a plain tree copy would copy a link's target)."""
    os.mkdir(dest)
    with CassetteDir(src) as root:
        for name in (MANIFEST_NAME, FRAMES_NAME, RAW_NAME, TIMING_NAME, CONNECTIONS_JOURNAL):
            try:
                fd = root.open(name)
            except FileNotFoundError:
                continue
            with open(fd, "rb") as fin, open(os.path.join(dest, name), "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)


def run_inspect(args: argparse.Namespace) -> int:
    tmp: list[str] = []
    try:
        return _inspect(args, tmp)
    finally:
        for path in tmp:
            shutil.rmtree(path, ignore_errors=True)


def _inspect(args: argparse.Namespace, tmp: list[str]) -> int:
    try:
        reader = _open_read_only(args.cassette, tmp)
        m = reader.manifest
        if args.conn is not None and m.connection(args.conn) is None:
            known = ", ".join(str(c.id) for c in m.connections) or "none"
            raise UsageError(f"no connection {args.conn} in {args.cassette} (connections: {known})")
        holds = Holds.of(reader, args.conn)  # (reads the frames through the index first)
        frames = reader.frames_for(args.conn) if args.conn is not None else reader.frames()
        if args.api:
            wanted = {a.lower() for a in args.api}
            frames = (f for f in frames if protocol_for(f.proto).label(f.summary).lower() in wanted)
        try:
            if args.json:
                doc = dumps(inspect_json(m, frames, args.conn, holds))
                doc = doc.decode("utf-8", "surrogatepass")
                sys.stdout.buffer.write(
                    printable_json(doc).encode("utf-8", "surrogatepass") + b"\n"
                )
            else:
                print_tables(m, frames, args.conn, sys.stdout, payload=args.payload, holds=holds)
            sys.stdout.flush()
        except BrokenPipeError:  # `rrlab inspect DIR | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except CassetteError as exc:
        return _fail("inspect", exc)
    return EXIT_OK


# -- output ---------------------------------------------------------------------------------------


def inspect_json(
    m: Manifest, frames: Iterable[FrameRecord], conn: int | None, holds: Holds | None = None
) -> dict[str, Any]:
    manifest = m.to_dict()
    if conn is not None:
        manifest["connections"] = [c for c in manifest["connections"] if c["id"] == conn]
    rows = []
    bindable = Bindable(m)
    for f in frames:
        bindable.see(f)
        row = f.to_dict(timed=True)
        del row["raw"]
        row["size"] = len(f.raw)
        rows.append(row)
    doc = {"bindable": bindable.to_dict(), "frames": rows, "manifest": manifest}
    if holds is not None:
        doc["holds"] = holds.to_dict()
    return doc


#: summary fields (or AMQP method arguments) a client picks: MQTT and Kafka client id, AMQP
#: consumer tag
CLIENT_CHOSEN = ("client_id", "consumer_tag")
#: a Kafka client id made new each run holds 8+ random hex digits (`svc-d3565c6f`)
_GENERATED_ID = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{8,}(?![0-9a-fA-F])")


class Bindable:
    """Per connection, the identifier-shaped values its client frames carry: what a replay
    binds to this run's values when they differ (`rr.replay.bindings`), in first-seen order."""

    #: values listed per connection at most
    SHOWN = 12

    def __init__(self, m: Manifest) -> None:
        self.recognizer = Recognizer(Origin.of(m.meta))
        self.found: dict[int, dict[str, str]] = {}  # conn -> value -> kind

    def see(self, f: FrameRecord) -> None:
        if f.dir is not Direction.C2S:
            return
        summary = f.summary
        values = self.found.setdefault(f.conn, {})
        data = correlation_data(summary)
        if data is not None:
            # MQTT 5 correlation data: bound whole by position, shown as text (or 0x + hex)
            values.setdefault(shown(binary_text(data)), "correlation data")
            rest = {k: v for k, v in summary["properties"].items() if k != "correlation_data"}
            summary = {**summary, "properties": rest}  # (not scanned again as a token)
        text = json.dumps(summary, ensure_ascii=False)
        text += "\n" + payload_of(f).decode("utf-8", "replace")
        for name in CLIENT_CHOSEN:  # bound by position, whatever their shape
            if name == "client_id":  # MQTT: CONNECT's; Kafka: a request header's, generated
                value = summary.get(name)  # (a library's default, `kafka-python-3.0.12`, is not)
                kafka = f.proto is Proto.KAFKA and _GENERATED_ID.search(value or "") is not None
                value = value if summary.get("packet") == "CONNECT" or kafka else None
            else:
                value = (f.summary.get("args") or {}).get(name)
            if isinstance(value, str) and value:
                values.setdefault(value, name.replace("_", " "))
        for kind, value in self.recognizer.tokens(text):
            values.setdefault(value, kind)

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        return {
            str(conn): [{"kind": k, "value": v} for v, k in values.items()]
            for conn, values in sorted(self.found.items())
            if values
        }

    def line(self, conn: int) -> str | None:
        """Connection `conn`'s values on one line, the first SHOWN of them, or None."""
        values = self.found.get(conn)
        if not values:
            return None
        shown = [f"{v} ({k})" for v, k in list(values.items())[: self.SHOWN]]
        more = len(values) - self.SHOWN
        return ", ".join(shown) + (f" +{more} more" if more > 0 else "")


class Holds:
    """The deliveries a replay holds until the live publish that produced them in the
    recording has matched (`rr.replay.waits`: the fake broker's own links), per connection:
    held on it (by the delivery's connection) and released by its publishes."""

    #: deliveries listed per connection at most
    SHOWN = 12

    def __init__(self, waits: list[Wait], conn: int | None, error: str = "") -> None:
        self.error = error  # why the links could not be derived ("" when they were)
        self.held: dict[int, list[Wait]] = {}
        self.releases: dict[int, list[Wait]] = {}
        for wait in waits:
            if conn in (None, wait.delivery_conn):
                self.held.setdefault(wait.delivery_conn, []).append(wait)
            if conn in (None, wait.publish_conn):
                self.releases.setdefault(wait.publish_conn, []).append(wait)

    @classmethod
    def of(cls, reader: CassetteReader, conn: int | None) -> Holds:
        """Derived as `rrlab serve` does at cassette open (no rules file read); a recording a
        protocol cannot model says why instead of failing the whole inspect."""
        recording = Recording(reader.path, reader.manifest, reader.index())
        try:
            return cls(delivery_waits(recording), conn)
        except Exception as exc:  # a recording `rrlab serve` would refuse (StartError)
            cause = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            return cls([], conn, error=cause)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            str(conn): [w.to_dict() for w in waits] for conn, waits in sorted(self.held.items())
        }
        if self.error:
            doc = {"error": self.error}
        return doc

    def lines(self, conn: int) -> list[str]:
        """What connection `conn`'s section says about held deliveries (indented by 2)."""
        out = []
        held = self.held.get(conn, [])
        if held:
            n = len(held)
            out.append(f"holds {n} deliver{'y' if n == 1 else 'ies'} until a publish matched:")
            for wait in held[: self.SHOWN]:
                d, p = wait.delivery, wait.publish
                out.append(
                    f"  seq {d.seq} {wait.label(d)} <- publish on conn {wait.publish_conn} "
                    f"(seq {p.seq})"
                )
            if len(held) > self.SHOWN:
                out.append(f"  +{len(held) - self.SHOWN} more (--json lists them all)")
        released = self.releases.get(conn, [])
        if released:
            by_conn: dict[int, int] = {}
            for wait in released:
                by_conn[wait.delivery_conn] = by_conn.get(wait.delivery_conn, 0) + 1
            where = ", ".join(f"{n} on conn {c}" for c, n in sorted(by_conn.items()))
            out.append(f"its publishes release held deliveries: {where}")
        return out


def printable_json(doc: str) -> str:
    """JSON text with every character a terminal could act on written as a \\u escape: canonical
    JSON already escapes C0 controls such as ESC, not C1 controls (U+009B starts a control
    sequence on some terminals), DEL or bidi overrides. The parsed value is the same."""
    if doc.isprintable():
        return doc
    return "".join(c if c.isprintable() else _json_escape(c) for c in doc)


def _json_escape(c: str) -> str:
    code = ord(c)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return out


FRAME_COLUMNS = (
    "seq", "t(ms)", "conn", "dir", "proto", "api/method", "ids", "size", "red", "detail"
)  # fmt: skip
_FRAME_FMT = "{:>6}  {:>10}  {:>4}  {:<3}  {:<5}  {:<28}  {:<24}  {:>8}  {:<3}  {}"


def detail(f: FrameRecord) -> str:
    """What the decoder knows beyond the frame's name and ids (never clipped)."""
    return protocol_for(f.proto).detail(f.summary)


def payload_of(f: FrameRecord) -> bytes:
    """The message body where the protocol frames one, else the whole frame as recorded."""
    return protocol_for(f.proto).payload(f.summary, f.raw)


def hex_dump(data: bytes, indent: str = "        ") -> list[str]:
    """tcpdump -X style: offset, 16 bytes in groups of two, printable ASCII."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        groups = " ".join(chunk[i : i + 2].hex() for i in range(0, len(chunk), 2))
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{indent}0x{off:04x}:  {groups:<39}  {text}")
    return lines


def text_dump(data: bytes, indent: str = "        ") -> list[str]:
    """UTF-8 text, control characters escaped; bytes that are not text as a hex dump."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return hex_dump(data, indent)
    shown = "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)
    return [indent + line for line in shown.splitlines()] or [indent]


def print_tables(
    m: Manifest,
    frames: Iterable[FrameRecord],
    conn: int | None,
    out: TextIO,
    *,
    payload: str | None = None,
    holds: Holds | None = None,
) -> None:
    """The cassette as tables. Every line goes through `printable`: topic names, keys, client
    ids, close reasons, payload text and routes come from the cassette, which may hold escape
    sequences meant for your terminal."""

    def say(text: str) -> None:
        print(printable(text), file=out)

    flags = []
    if m.repaired:
        flags.append("repaired")
    if m.stopped:
        flags.append(f"stopped by budget {m.stopped.get('budget')}")
    say(
        f"cassette {m.format}  tool {m.tool_version}  protocols {','.join(m.protocols) or '-'}  "
        f"frames {m.frame_count}  raw bytes {m.raw_bytes}"
        + (f"  [{'; '.join(flags)}]" if flags else "")
    )
    for route in m.routes:
        say(f"route {route['proto']}  {route['listen']} -> {route['upstream']}")
    for node, entry in sorted(m.kafka_nodes.items(), key=lambda kv: int(kv[0])):
        say(f"kafka node {node}  {entry['upstream']} served on :{entry['listen_port']}")
    rows = [["conn", "proto", "route", "frames c2s/s2c", "bytes c2s/s2c", "closed"]]
    for c in m.connections:
        if conn is not None and c.id != conn:
            continue
        rows.append(
            [
                str(c.id),
                c.proto.value,
                f"{c.listen or '?'} -> {c.upstream or '?'}",
                f"{c.frames['c2s']}/{c.frames['s2c']}",
                f"{c.bytes['c2s']}/{c.bytes['s2c']}",
                "-" if c.closed_at_seq is None else (c.close_reason or "yes"),
            ]
        )
    say("")
    for line in _table([[printable(cell) for cell in row] for row in rows], right={0, 3, 4}):
        say(line)
    say("")
    say(_FRAME_FMT.format(*FRAME_COLUMNS).rstrip())
    bindable = Bindable(m)
    for f in frames:
        bindable.see(f)
        what, ids = protocol_for(f.proto).describe(f.summary)
        line = _FRAME_FMT.format(
            f.seq,
            f"{f.t_us / 1000:.3f}",
            f.conn,
            ARROWS[f.dir.value],
            f.proto.value,
            clip(what, 28),
            clip(ids, 24),
            len(f.raw),
            "R" if f.redacted else "",
            detail(f),
        )
        say(line.rstrip())
        if payload is not None:
            for row in payload_rows(f, payload):
                say(row)
    say("")
    say("replay, per connection (seq: the frame table's):")
    say("  binds: identifier-shaped values its client frames carry, bound to this run's values")
    say("  holds: deliveries served only once the live publish that produced them has matched")
    if holds is not None and holds.error:
        say(f"  (which deliveries wait is not known: {holds.error})")
    for c in m.connections:
        if conn is not None and c.id != conn:
            continue
        values = bindable.line(c.id)
        held = holds.lines(c.id) if holds is not None else []
        if values is None and not held:
            say(f"conn {c.id} ({c.proto.value}): nothing bound or held")
            continue
        say(f"conn {c.id} ({c.proto.value}):")
        if values is not None:
            say(f"  binds {len(bindable.found[c.id])}:")
            for line in textwrap.wrap(
                values,
                WIDTH,
                initial_indent="    ",
                subsequent_indent="    ",
                break_long_words=False,
                break_on_hyphens=False,
            ):
                say(line)
        for line in held:
            say("  " + line)


def payload_rows(f: FrameRecord, payload: str) -> list[str]:
    """The lines below a frame for `--payload text|hex`."""
    if payload == "hex":
        return hex_dump(payload_of(f))
    lines = protocol_for(f.proto).payload_lines(f.dir, f.summary, f.raw)
    if lines is None:
        return text_dump(payload_of(f))
    return [f"        {line}" for line in lines]
