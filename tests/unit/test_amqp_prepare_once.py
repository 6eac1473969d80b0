"""Serving an AMQP cassette derives the publish -> delivery links and the clock-driven
publishes at open in one read of the recording (`rr.protocols.amqp.session.prepare`): each
connection's frames are read once, not once per derivation, and what each derives is what it
derives reading the recording alone."""

from __future__ import annotations

from collections import Counter

import pytest
from replay_playbook import CASSETTES, count_reads

from rrlab.rr.codecs import Proto
from rrlab.rr.protocols import client_kind, protocol_for
from rrlab.rr.protocols.amqp.causes import Causes
from rrlab.rr.protocols.amqp.clocked import Clocked, recorded_publishes
from rrlab.rr.replay.recording import Recording
from rrlab.rr.replay.session import PortMap, ReplayContext, ReplayOptions


@pytest.mark.parametrize("cassette", ["worker-amqp-rabbitmq", "worker-lab-kafka-amqp"])
def test_prepare_reads_each_connection_once(cassette, monkeypatch):
    recording = Recording.open(CASSETTES / cassette, classify=client_kind)
    reads = count_reads(monkeypatch)
    ports = PortMap({port: port for _proto, port in recording.listeners()})
    ctx = ReplayContext(recording, ReplayOptions(), None, ports)  # type: ignore[arg-type]
    protocol_for(Proto.AMQP).prepare(ctx)
    amqp = [rc.id for rc in recording.conns if rc.proto is Proto.AMQP]
    assert amqp
    assert reads == Counter(amqp)  # once each, and nothing else read

    monkeypatch.undo()
    alone = Recording.open(CASSETTES / cassette, classify=client_kind)
    shared = ctx.shared[Proto.AMQP]
    assert shared.causes.cause_of == Causes(alone).cause_of
    assert shared.causes.consumer_of == Causes(alone).consumer_of
    clocked = Clocked.of(recorded_publishes(alone), ctx.bindings.clock)
    assert list(shared.clocked.frames()) == list(clocked.frames())
