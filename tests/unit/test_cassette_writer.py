"""CassetteWriter: canonical lines, manifest, record modes, budgets, write roots."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import canonicaljson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rrlab.rr.cassette import (
    CassetteExists,
    CassetteWriter,
    InvalidRecordMode,
    NotACassette,
    RecordMode,
    WriterClosed,
    verify,
)
from rrlab.rr.cassette.format import (
    EncodedSummary,
    FrameRecord,
    decode_frame_line,
    encode_frame_line,
    encode_frame_line_v2,
    summary_encoder,
    summary_json,
)
from rrlab.rr.codecs.base import Direction, Proto
from rrlab.rr.policy import BudgetExceeded, Budgets, WritePathRefused, get_profile
from rrlab.rr.protocols import AMQP

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
summaries = st.dictionaries(
    st.text(max_size=10),
    st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=3), max_leaves=6),
    max_size=5,
)


@given(
    seq=st.integers(0, 2**40),
    conn=st.integers(0, 2**20),
    direction=st.sampled_from(list(Direction)),
    t_us=st.integers(0, 2**50),
    proto=st.sampled_from(list(Proto)),
    summary=summaries,
    raw=st.binary(max_size=300),
    redacted=st.booleans(),
)
def test_frame_line_is_exactly_canonicaljson(
    seq, conn, direction, t_us, proto, summary, raw, redacted
):
    line = encode_frame_line(conn, direction, proto, summary, raw, redacted)
    record = FrameRecord(seq, conn, direction, t_us, proto, summary, raw, redacted)
    assert line == canonicaljson.encode_canonical_json(record.to_dict(sidecar=True)) + b"\n"
    decoded = decode_frame_line(line, path="f", lineno=seq + 1, t_us=t_us, raw=raw)
    assert decoded == record  # seq is the line's place, t_us from frames.timing, raw frames.raw
    old = encode_frame_line_v2(conn, direction, proto, summary, raw, redacted)
    assert old == canonicaljson.encode_canonical_json(record.to_dict()) + b"\n"
    assert decode_frame_line(old, path="f", lineno=seq + 1, t_us=t_us) == record


any_json = st.recursive(
    json_scalars
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["\u2028", 'é\x00"\\', "\ud7ff\U0001f600"]),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=500)
@given(summary=st.dictionaries(st.text(max_size=10), any_json, max_size=6))
def test_summary_json_is_exactly_canonicaljson(summary):
    assert summary_json(summary) == canonicaljson.encode_canonical_json(summary)


look_alike = st.sampled_from([0, 1, 1024, True, False, 1.0, "1", None, -1, 2**70])
amqp_shaped = st.one_of(
    st.fixed_dictionaries({"channel": look_alike, "frame": st.just("body"), "size": look_alike}),
    st.fixed_dictionaries(
        {
            "body_size": look_alike,
            "channel": look_alike,
            "frame": st.just("header"),
            "properties": st.sampled_from(
                [{"cluster_id": ""}, {"cluster_id": "x"}, {}, {"cluster_id": 0}, None]
            ),
        }
    ),
    st.fixed_dictionaries(
        {"channel": look_alike, "frame": st.sampled_from(["body", "header"]), "extra": look_alike}
    ),
    st.fixed_dictionaries(
        {
            "args": st.fixed_dictionaries(
                {
                    "exchange": st.sampled_from(["", "x", 0, None]),
                    "immediate": look_alike,
                    "mandatory": look_alike,
                    "routing_key": st.sampled_from(["q", "", 1, True]),
                    "ticket": look_alike,
                }
            ),
            "channel": look_alike,
            "frame": st.just("method"),
            "method": st.sampled_from(["Basic.Publish", "Basic.Deliver"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "args": st.fixed_dictionaries(
                {
                    "consumer_tag": st.sampled_from(["ctag", "", 1, None, '"delivery_tag":1,']),
                    "delivery_tag": st.one_of(look_alike, st.integers()),
                    "exchange": st.sampled_from(["", "x", 0, None]),
                    "redelivered": look_alike,
                    "routing_key": st.sampled_from(["q", "", 1, True, "ü\n"]),
                }
            ),
            "channel": look_alike,
            "frame": st.just("method"),
            "method": st.sampled_from(["Basic.Deliver", "Basic.Ack", "Basic.Publish"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "args": st.fixed_dictionaries(
                {"delivery_tag": st.one_of(look_alike, st.integers()), "multiple": look_alike}
            ),
            "channel": look_alike,
            "frame": st.just("method"),
            "method": st.sampled_from(["Basic.Ack", "Basic.Deliver"]),
        }
    ),
)


@settings(max_examples=300)
@given(st.lists(amqp_shaped, min_size=1, max_size=12))
def test_repeated_frame_summaries_cached_yet_exactly_canonicaljson(summaries):
    # repeated and look-alike (1, True, 1.0) summaries in a row: a cached encoding (the AMQP
    # protocol's cache key) never answers for a summary whose bytes differ
    encode = summary_encoder(AMQP.summary_cache_key)
    for summary in summaries + summaries:
        assert encode(summary) == canonicaljson.encode_canonical_json(summary), summary


def test_cached_summaries_never_answer_for_a_look_alike():
    publish = {"exchange": "", "immediate": False, "mandatory": False, "routing_key": "q"}
    none = {"cluster_id": ""}
    deliver = {
        "consumer_tag": "ctag",
        "delivery_tag": 5,
        "exchange": "",
        "redelivered": False,
        "routing_key": "q",
    }
    deliver_frame = {"channel": 1, "frame": "method", "method": "Basic.Deliver"}
    ack_frame = {"channel": 1, "frame": "method", "method": "Basic.Ack"}
    shapes = [
        lambda v: {"channel": 1, "frame": "body", "size": v},
        lambda v: {"channel": v, "frame": "body", "size": 1},
        lambda v: {"body_size": v, "channel": 1, "frame": "header", "properties": none},
        lambda v: {"body_size": 1, "channel": v, "frame": "header", "properties": none},
        lambda v: {
            "args": {**publish, "ticket": v},
            "channel": 1,
            "frame": "method",
            "method": "Basic.Publish",
        },
        lambda v: {
            "args": {**publish, "ticket": 0, "immediate": v},
            "channel": 1,
            "frame": "method",
            "method": "Basic.Publish",
        },
        lambda v: {
            "args": {**publish, "ticket": 0, "routing_key": v},
            "channel": 1,
            "frame": "method",
            "method": "Basic.Publish",
        },
        lambda v: {"args": {**deliver, "delivery_tag": v}, **deliver_frame},
        lambda v: {"args": {**deliver, "redelivered": v}, **deliver_frame},
        lambda v: {"args": {**deliver, "consumer_tag": v}, **deliver_frame},
        lambda v: {"args": {**deliver, "routing_key": v}, **deliver_frame},
        lambda v: {**deliver_frame, "args": deliver, "channel": v},
        lambda v: {**ack_frame, "args": {"delivery_tag": v, "multiple": False}},
        lambda v: {**ack_frame, "args": {"delivery_tag": 7, "multiple": v}},
        lambda v: {**ack_frame, "args": {"delivery_tag": 7, "multiple": False}, "channel": v},
    ]
    encode = summary_encoder(AMQP.summary_cache_key)
    for shape in shapes:
        for value in (1, True, 1.0, 0, False, "1") * 2:  # twice: cached answers too
            summary = shape(value)
            assert encode(summary) == canonicaljson.encode_canonical_json(summary)


def test_deliver_and_ack_summaries_encode_exactly_whatever_the_delivery_tag():
    # Deliver and Ack are not cached (every delivery tag differs): each encodes on its own
    encode = summary_encoder(AMQP.summary_cache_key)
    for tag in (1, 7, 10, 99, 2**63 - 1, -3, 2**70, 0, 12345):
        for summary in (
            {
                "args": {
                    "consumer_tag": 'c"delivery_tag":1,',
                    "delivery_tag": tag,
                    "exchange": "ex",
                    "redelivered": tag == 7,
                    "routing_key": "rk",
                },
                "channel": 3,
                "frame": "method",
                "method": "Basic.Deliver",
            },
            {
                "args": {"delivery_tag": tag, "multiple": tag == 99},
                "channel": 1,
                "frame": "method",
                "method": "Basic.Ack",
            },
        ):
            assert encode(summary) == canonicaljson.encode_canonical_json(summary)
            assert AMQP.summary_cache_key(summary) is None


def test_summary_encoder_caches_by_the_supplied_key_only():
    """The line encoder knows no protocol: it caches under whatever key function it is given
    (one cache per function) and encodes everything else afresh."""
    assert summary_encoder(None) is summary_json
    calls = []

    def by_size(summary):
        calls.append(summary)
        return ("size", summary["size"]) if "size" in summary else None

    encode = summary_encoder(by_size)
    assert summary_encoder(by_size) is encode
    assert encode({"size": 3, "x": 1}) == b'{"size":3,"x":1}'
    assert encode({"size": 3, "x": 2}) == b'{"size":3,"x":1}'  # the key says: same bytes
    assert encode({"y": 2}) == b'{"y":2}'
    assert len(calls) == 3


def test_summary_json_falls_back_to_canonicaljson_for_the_rest():
    for bad in ({"x": float("nan")}, {"x": b"bytes"}, {"x": {1, 2}}):
        with pytest.raises(ValueError, match="not JSON-able"):
            summary_json(bad)
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="not JSON-able"):
        summary_json(loop)
    assert summary_json({"t": (1, "a"), "n": None}) == canonicaljson.encode_canonical_json(
        {"t": (1, "a"), "n": None}
    )


def test_frame_summary_must_be_json():
    with pytest.raises(ValueError, match="not JSON-able"):
        encode_frame_line(1, Direction.C2S, Proto.KAFKA, {"x": b"bytes"}, b"")


def _clock():
    t = [0]

    def now() -> int:
        t[0] += 1500
        return t[0]

    return now


def record_small(path, **kw):
    w = CassetteWriter.create(path, meta={"seed": 7}, clock_ns=_clock(), **kw)
    w.add_route("kafka", "127.0.0.1:19092", "127.0.0.1:9092")
    w.set_kafka_node(1, "127.0.0.1:9092", 19093)
    c1 = w.open_connection("kafka", "127.0.0.1:19092", "127.0.0.1:9092")
    c2 = w.open_connection(Proto.MQTT, "127.0.0.1:11883", "127.0.0.1:1883")
    w.write_frame(
        c1, "c2s", "kafka", {"api": "ApiVersions", "version": 3, "correlation_id": 1}, b"a"
    )
    w.write_frame(c1, Direction.S2C, Proto.KAFKA, {"correlation_id": 1}, b"bb")
    w.write_frame(c2, "c2s", "mqtt", {"type": "CONNECT"}, b"\x10ccc", redacted=True)
    w.close_connection(c2, "client closed")
    return w


def test_manifest_and_frames(tmp_path):
    path = tmp_path / "c"
    w = record_small(path)
    m = w.finalize()
    assert w.finalize() is m  # idempotent
    on_disk = (path / "cassette.json").read_bytes()
    assert on_disk == canonicaljson.encode_canonical_json(json.loads(on_disk))
    doc = json.loads(on_disk)
    frames = (path / "frames.jsonl").read_bytes()
    assert doc["format"] == "rrlab.cassette/3"
    assert doc["finalized"] is True
    assert doc["frames_file"]["sha256"] == hashlib.sha256(frames).hexdigest()
    assert doc["frames_file"]["bytes"] == len(frames)
    assert doc["frame_count"] == 3 and doc["raw_bytes"] == 7
    assert doc["frame_counts"] == {"c2s": 2, "s2c": 1}
    assert doc["protocols"] == ["kafka", "mqtt"]
    assert doc["kafka_nodes"] == {"1": {"listen_port": 19093, "upstream": "127.0.0.1:9092"}}
    assert doc["meta"] == {"seed": 7}
    c1, c2 = doc["connections"]
    assert c1["frames"] == {"c2s": 1, "s2c": 1} and c1["bytes"] == {"c2s": 1, "s2c": 2}
    assert c1["closed_at_seq"] is None
    assert c2["closed_at_seq"] == 3 and c2["close_reason"] == "client closed"
    lines = [json.loads(x) for x in frames.splitlines()]
    assert [sorted(x) for x in lines[:2]] == [["conn", "dir", "proto", "size", "summary"]] * 2
    raw = (path / "frames.raw").read_bytes()  # every frame's bytes, in line order
    assert len(raw) == sum(x["size"] for x in lines) == 7
    assert doc["raw_file"] == {
        "bytes": 7,
        "name": "frames.raw",
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    timing = (path / "frames.timing").read_bytes()
    assert timing == b"1\n3\n4\n"  # one line per frame: since start, in microseconds
    assert doc["timing_file"] == {
        "bytes": len(timing),
        "name": "frames.timing",
        "sha256": hashlib.sha256(timing).hexdigest(),
    }
    assert (path / ".gitattributes").read_bytes() == b"frames.timing -diff\nframes.raw -diff\n"
    assert "redacted" not in lines[0] and lines[2]["redacted"] is True
    with pytest.raises(WriterClosed):
        w.write_frame(1, "c2s", "kafka", {}, b"")


def test_manifest_has_no_clock_values(tmp_path):
    a = record_small(tmp_path / "a").finalize()
    b = record_small(tmp_path / "b").finalize()
    assert a.to_json() == b.to_json()


def test_provisional_manifest_while_recording(tmp_path):
    w = record_small(tmp_path / "c")
    doc = json.loads((tmp_path / "c" / "cassette.json").read_bytes())
    assert doc["finalized"] is False and doc["routes"] and doc["kafka_nodes"]
    journal = (tmp_path / "c" / "connections.jsonl").read_bytes().splitlines()
    events = [(e["event"], e["id"]) for e in map(json.loads, journal)]
    assert events == [("open", 1), ("open", 2), ("close", 2)]  # one line per event
    assert len(w.finalize().connections) == 2
    assert not (tmp_path / "c" / "connections.jsonl").exists()  # folded into the manifest


def test_connection_events_cost_the_same_at_any_count(tmp_path):
    """Opening and closing never rewrites the manifest: each thousand connections appends the
    same few bytes to the journal, the last thousand no more than the first, and finalize folds
    all 20,000 in (issue G.2). Counted in bytes, not seconds: speed lives in bench/."""
    w = CassetteWriter.create(tmp_path / "c")
    w.add_route("mqtt", "127.0.0.1:11883", "127.0.0.1:1883")
    manifest = tmp_path / "c" / "cassette.json"
    manifest_inode, manifest_size = manifest.stat().st_ino, manifest.stat().st_size
    journal = tmp_path / "c" / "connections.jsonl"
    grown = []
    for _ in range(20):
        before = journal.stat().st_size if journal.exists() else 0
        for _ in range(1000):
            conn = w.open_connection("mqtt", "127.0.0.1:11883", "127.0.0.1:1883")
            w.write_frame(conn, "c2s", "mqtt", {"type": "CONNECT"}, b"\x10\x00")
            w.close_connection(conn, "client closed")
        grown.append(journal.stat().st_size - before)
    assert manifest.stat().st_ino == manifest_inode  # not rewritten
    assert manifest.stat().st_size == manifest_size
    assert grown[0] > 0 and grown[-1] <= 1.1 * grown[0], grown  # ids gain a digit, nothing more
    m = w.finalize()
    assert len(m.connections) == 20_000
    assert verify(tmp_path / "c").connections == 20_000


def test_artifacts(tmp_path):
    src = tmp_path / "aggregate.json"
    src.write_bytes(b'{"n":1}')
    w = record_small(tmp_path / "c")
    digest = w.add_artifact(src, "out/aggregate.json")
    assert digest == hashlib.sha256(b'{"n":1}').hexdigest()
    assert (tmp_path / "c/artifacts/out/aggregate.json").read_bytes() == b'{"n":1}'
    for bad in ("../x", "/etc/x", ""):
        with pytest.raises(ValueError, match="artifact name"):
            w.add_artifact(src, bad)
    assert w.finalize().artifacts == {"out/aggregate.json": digest}


def test_record_mode_enum():
    assert RecordMode.parse("once") is RecordMode.ONCE
    with pytest.raises(InvalidRecordMode) as err:
        RecordMode.parse("all")
    assert "'all'" in str(err.value) and "once, rewrite" in str(err.value)


def test_once_refuses_existing(tmp_path):
    path = tmp_path / "c"
    record_small(path).finalize()
    with pytest.raises(CassetteExists) as err:
        CassetteWriter.create(path)
    assert str(path) in str(err.value) and "--mode rewrite" in str(err.value)
    assert "a finalized cassette already exists" in str(err.value)


def test_once_refuses_crashed(tmp_path):
    path = tmp_path / "c"
    w = record_small(path)  # never finalized
    w._lock.release()  # the recorder died: the kernel released its lock
    with pytest.raises(CassetteExists, match="an unfinalized cassette already exists"):
        CassetteWriter.create(path, mode="once")


def test_rewrite_replaces(tmp_path):
    path = tmp_path / "c"
    w = record_small(path)
    w.add_artifact(__file__, "old.txt")
    w.finalize()
    (path / "notes.txt").write_text("mine")
    w2 = CassetteWriter.create(path, mode="rewrite")
    m = w2.finalize()
    assert m.frame_count == 0 and m.artifacts == {}
    assert (path / "frames.jsonl").read_bytes() == b""
    assert not (path / "artifacts" / "old.txt").exists()
    assert (path / "notes.txt").read_text() == "mine"  # only the cassette's own files go


def test_refuses_foreign_directory(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "thesis.tex").write_text("x")
    with pytest.raises(NotACassette):
        CassetteWriter.create(tmp_path / "c", mode="rewrite")


def test_policy_write_roots(tmp_path):
    rec = get_profile("os_record")
    w = CassetteWriter.create("cassettes/demo", policy=rec, base=tmp_path)
    assert w.path == tmp_path / "cassettes" / "demo"
    w.finalize()
    for bad in ("../escape", "/tmp/elsewhere", "cassettes/../../x"):
        with pytest.raises(WritePathRefused):
            CassetteWriter.create(bad, policy=rec, base=tmp_path)
    tmp_ok = dataclasses.replace(rec, write_roots=(tmp_path,))
    CassetteWriter.create(tmp_path / "x", policy=tmp_ok).finalize()


@pytest.mark.parametrize(
    ("budgets", "budget", "limit", "value"),
    [
        (Budgets(max_frames=2), "max_frames", 2, 3),
        (Budgets(max_frame_bytes=100), "max_frame_bytes", 100, 200),
        (Budgets(max_cassette_bytes=300), "max_cassette_bytes", 300, None),
    ],
)
def test_budget_stops_recording(tmp_path, budgets, budget, limit, value):
    w = CassetteWriter.create(tmp_path / "c", budgets=budgets)
    conn = w.open_connection("amqp", "127.0.0.1:15673", "127.0.0.1:5672")
    sizes = [10, 10, 200, 10]
    written = 0
    with pytest.raises(BudgetExceeded) as err:
        for size in sizes:
            w.write_frame(
                conn, "c2s", "amqp", {"method": "Basic.Publish", "channel": 1}, b"x" * size
            )
            written += 1
    exc = err.value
    assert (exc.budget, exc.limit) == (budget, limit)
    if value is not None:
        assert exc.value == value
    assert budget in str(exc) and str(limit) in str(exc)
    with pytest.raises(BudgetExceeded):  # stays stopped
        w.write_frame(conn, "c2s", "amqp", {}, b"")
    m = w.finalize()
    assert m.frame_count == written
    assert m.stopped == exc.to_dict()
    lines = (tmp_path / "c" / "frames.jsonl").read_bytes().splitlines()
    assert len(lines) == written
    assert sum(len(x) + 1 for x in lines) <= budgets.max_cassette_bytes


@pytest.mark.parametrize(
    ("budgets", "budget", "written"),
    [
        (Budgets(max_frames=2), "max_frames", 2),
        (Budgets(max_frame_bytes=100), "max_frame_bytes", 2),
        (Budgets(max_cassette_bytes=300), "max_cassette_bytes", 2),
    ],
)
def test_write_frames_batch_stops_at_the_budget(tmp_path, budgets, budget, written):
    """One batch crossing a budget: the frames before the crossing one are on disk and counted."""
    w = CassetteWriter.create(tmp_path / "c", budgets=budgets, clock_ns=_clock())
    conn = w.open_connection("amqp", "127.0.0.1:15673", "127.0.0.1:5672")
    batch = [({"channel": 1, "i": i}, b"x" * size, False) for i, size in enumerate([10, 10, 200])]
    with pytest.raises(BudgetExceeded) as err:
        w.write_frames(conn, Direction.C2S, Proto.AMQP, batch)
    assert err.value.budget == budget
    assert w.frame_count == written
    m = w.finalize()
    assert m.frame_count == written and m.stopped == err.value.to_dict()
    data = (tmp_path / "c" / "frames.jsonl").read_bytes()
    assert m.frames_sha256 == hashlib.sha256(data).hexdigest()
    assert [json.loads(x)["summary"]["i"] for x in data.splitlines()] == list(range(written))


def test_write_frames_equals_write_frame_one_by_one(tmp_path):
    frames = [({"n": i, "s": "é\u2028"}, bytes([i]) * i, i % 2 == 0) for i in range(5)]
    outputs = []
    for name, batched in (("a", True), ("b", False)):
        w = CassetteWriter.create(tmp_path / name, clock_ns=_clock())
        conn = w.open_connection("amqp", None, None)
        if batched:
            assert w.write_frames(conn, "s2c", "amqp", frames) == 5
        else:
            for summary, raw, redacted in frames:
                w.write_frame(conn, "s2c", "amqp", summary, raw, redacted)
        m = w.finalize()
        outputs.append(((tmp_path / name / "frames.jsonl").read_bytes(), m.frames_sha256))
    assert outputs[0] == outputs[1]


def test_shared_summaries_make_the_lines_of_one_frame_at_a_time(tmp_path):
    """A batch of frames sharing `EncodedSummary`s (the recorder's memo), of several sizes,
    one of them redacted, beside own summaries: the lines and bytes written one frame at a
    time, and each shared summary keeps the end of a line per size it was written with."""
    body = EncodedSummary({"channel": 1, "frame": "body"})
    publish = EncodedSummary({"channel": 1, "frame": "method", "method": "Basic.Publish"})
    frames = [
        (publish, b"p" * 20, False),
        (body, b"b" * 11, False),
        (publish, b"p" * 20, False),
        (body, b"b" * 12, False),
        (body, b"b" * 11, True),
        ({"own": "é"}, b"o" * 3, False),
        (body, b"b" * 11, False),
    ]
    outputs = []
    for name, batched in (("a", True), ("b", False)):
        w = CassetteWriter.create(tmp_path / name, clock_ns=_clock())
        conn = w.open_connection("amqp", None, None)
        if batched:
            assert w.write_frames(conn, "c2s", "amqp", frames) == len(frames)
        else:
            for summary, raw, redacted in frames:
                w.write_frame(conn, "c2s", "amqp", dict(summary), raw, redacted)
        m = w.finalize()
        files = [(tmp_path / name / f).read_bytes() for f in ("frames.jsonl", "frames.raw")]
        outputs.append((files, m.frames_sha256, m.raw_sha256, m.frame_count))
    assert outputs[0] == outputs[1]
    assert body.sized == {11: body.sized_tail(11), 12: body.sized_tail(12)}
    assert body.sized_tail(11) == b'"size":11,"summary":{"channel":1,"frame":"body"}}\n'
    assert set(publish.sized) == {20}


def test_write_frames_bad_summary_keeps_the_frames_before_it(tmp_path):
    w = CassetteWriter.create(tmp_path / "c")
    conn = w.open_connection("amqp", None, None)
    with pytest.raises(ValueError, match="not JSON-able"):
        w.write_frames(conn, "c2s", "amqp", [({"a": 1}, b"1", False), ({"b": b"x"}, b"2", False)])
    assert w.frame_count == 1
    assert w.finalize().frame_count == 1


def test_wrong_connection_or_proto(tmp_path):
    w = CassetteWriter.create(tmp_path / "c")
    conn = w.open_connection("mqtt", None, None)
    with pytest.raises(ValueError, match="unknown connection"):
        w.write_frame(99, "c2s", "mqtt", {}, b"")
    with pytest.raises(ValueError, match="is mqtt"):
        w.write_frame(conn, "c2s", "kafka", {}, b"")
    with pytest.raises(ValueError):
        w.write_frame(conn, "up", "mqtt", {}, b"")
    w.finalize()
