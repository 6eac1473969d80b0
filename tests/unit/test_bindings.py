"""rr.replay.bindings: which values bind, conflicts, clock values, stamping (no sockets)."""

from __future__ import annotations

import uuid

from rrlab.rr.replay.bindings import Bindings, Origin, Recognizer, alike, binary_text, clock

REC, LIVE = str(uuid.UUID(int=1 << 100 | 0xABC)), str(uuid.uuid4())
ORIGIN = Origin(host="laptop-anna", user="anna")


def table() -> Bindings:
    return Bindings(Recognizer(ORIGIN), clock())


def test_identifier_shaped_values_pair_up_inside_longer_strings():
    rec = Recognizer(ORIGIN)
    assert rec.pairs(f"reply.{REC}", f"reply.{LIVE}") == [(REC, LIVE)]
    hex_live = uuid.uuid4().hex  # another spelling of a UUID stands for one
    assert rec.pairs(f"q-{REC}", f"q-{hex_live}") == [(REC, hex_live)]
    assert rec.pairs("amq.gen-Jzq1Xy_ab3kLmN", "amq.gen-Qq9Zz_Tt7uVwXy") == [
        ("amq.gen-Jzq1Xy_ab3kLmN", "amq.gen-Qq9Zz_Tt7uVwXy")
    ]
    assert rec.pairs("celery@laptop-anna.celery.pidbox", "celery@ci-7.celery.pidbox") == [
        ("laptop-anna", "ci-7")
    ]
    assert rec.pairs("gen4242@laptop-anna", "gen99@ci-7") == [("gen4242@laptop-anna", "gen99@ci-7")]
    assert rec.pairs("/home/anna/x", "/home/runner/x") == [("anna", "runner")]


def test_values_that_are_not_identifiers_never_pair():
    rec = Recognizer(ORIGIN)
    assert rec.pairs("add(2, 3)", "add(2, 4)") is None  # no identifier at all
    assert rec.pairs(f"{REC}:price=10", f"{LIVE}:price=11") is None  # the rest must be equal
    assert rec.pairs("deadbeef", "cafebabe") is None  # short hex is a word, not a token
    assert rec.pairs(REC, "not-a-uuid") is None


def test_unify_binds_then_stamps_and_puts_back_everywhere():
    b = table()
    rec = {"args": {"queue": REC}, "properties": {"correlation_id": REC, "reply_to": REC}}
    live = {"args": {"queue": LIVE}, "properties": {"correlation_id": LIVE, "reply_to": LIVE}}
    unified = b.unify(rec, live)
    assert unified is not None and b.bind(unified.pairs, "amqp live conn 1 Queue.Declare") is None
    assert [(x.recorded, x.live) for x in b.made] == [(REC, LIVE)]
    assert b.to_live(f"result for {REC}") == f"result for {LIVE}"
    assert b.bytes_to_live(f'{{"id":"{REC}"}}'.encode()) == f'{{"id":"{LIVE}"}}'.encode()
    assert b.value_to_recorded(live) == rec
    assert b.unify(rec, {"args": {"queue": LIVE}, "properties": {}}) is None  # keys differ


def test_a_value_bound_twice_is_a_conflict_naming_both():
    b = table()
    other = str(uuid.uuid4())
    assert b.bind([(REC, LIVE)], "here") is None
    conflict = b.bind([(REC, other)], "there")
    assert conflict is not None and REC in conflict.line() and other in conflict.line()
    assert LIVE in conflict.line()
    reverse = b.bind([(str(uuid.uuid4()), LIVE)], "there")
    assert reverse is not None and reverse.reverse
    assert len(b.made) == 1


def test_clock_values_of_the_recording_match_any_live_one_of_the_same_form():
    b = table()
    rec = {"ts": 1764750000.25, "at": "2025-12-03T08:20:00.123456+00:00", "n": 17}
    live = {"ts": 1796290000.5, "at": "2026-12-03T09:14:00.654321+00:00", "n": 17}
    unified = b.unify(rec, live)
    assert unified is not None and sorted(unified.clocks) == ["at", "ts"] and not unified.pairs
    assert b.unify(rec, {**live, "n": 18}) is None  # a count is never a clock
    assert b.unify(rec, {**live, "at": "2026-12-03"}) is None  # another form
    exact = Bindings(Recognizer(ORIGIN), clock(["ts"]))
    assert exact.unify(rec, live) is None  # a rule turned it off for this field


def test_an_epoch_written_as_a_string_is_a_clock_value():
    b = table()
    rec = {"expires": "1796294018.047566", "ms": "1796294018047", "id": "123456789"}
    live = {"expires": "1796294033.6353638", "ms": "1796294033635", "id": "123456789"}
    unified = b.unify(rec, live)
    assert unified is not None and sorted(unified.clocks) == ["expires", "ms"]
    assert b.unify(rec, {**live, "expires": "1796294033"}) is None  # another form
    assert b.unify(rec, {**live, "expires": "soon"}) is None
    assert b.unify({"n": "17"}, {"n": "18"}) is None  # a short number is never a clock


def test_values_bound_crosswise_are_flagged_in_live_bytes():
    """Consumer tags swapped between two channels (recorded None2 is live None3 and recorded
    None3 live None2): live bytes holding `None3` equal recorded bytes that mean the other
    consumer, so a fast path that matches equal bytes must not take them."""
    table = Bindings()
    assert table.bind([("None3", "None2")], "here") is None
    assert not table.crossed_in(b"...None2...")  # live None2 is no recorded value (yet)
    assert table.bind([("None2", "None3")], "there") is None
    assert table.crossed_in(b"...None3...") and table.crossed_in(b"...None2...")
    assert not table.crossed_in(b"...None4...")


def test_client_ids_alike_differ_only_in_their_generated_parts():
    """A Kafka client id binds to a recorded one only when alike (the connection's first
    request may not say which recorded client it is)."""
    assert alike("svc-d3565c6f", "svc-b3410c8d")
    assert alike("svc-d3565c6f", "svc-0a1b2c3d4e")  # another length
    assert alike("svc-d3565c6f", "svc-abcdefab")  # random hex with no digit
    assert alike("producer-1", "producer-12")
    assert not alike("svc-d3565c6f", "svc-d3565c6f")  # the same: nothing to bind
    assert not alike("billing", "shipping")  # fixed names
    assert not alike("svc-d3565c6f", "rrlab-responder")
    assert not alike("kafka-python-2.0.2", "svc-12345678")


def test_bytes_that_are_not_text_bind_whole_and_are_replaced_inside_frames():
    """An MQTT 5 correlation data of random bytes (not UTF-8) is bound as its `binary_text`:
    replaced inside served bytes both ways, and shown as hex in the report."""
    rec, live = bytes(range(0x80, 0x90)), bytes(range(0xF0, 0x100))
    bindings = table()
    assert bindings.bind([(binary_text(rec), binary_text(live))], "mqtt PUBLISH") is None
    assert bindings.bytes_to_live(b"\x00\x10" + rec + b"!") == b"\x00\x10" + live + b"!"
    assert bindings.bytes_to_recorded(live) == rec and bindings.mentions_live(b"x" + live)
    assert bindings.made[0].to_dict()["recorded"] == "0x" + rec.hex()
    assert bindings.lines() == [f"bound '0x{rec.hex()}' -> '0x{live.hex()}' (mqtt PUBLISH)"]
