"""Scheduling is not behaviour: in transcript order, each channel of a connection is a lane of
its own (a worker's threads share a socket, and how their channels' messages interleave on it
is the scheduler's), and a live client's acks of concurrent deliveries (Basic.Ack, Basic.Nack,
Basic.Reject) match the recorded ack of the same delivery tag wherever it stands in its
channel; the other messages of a channel keep their recorded order among themselves, whatever
acks are still to come: MQTT's ack lanes, for AMQP. (Lookup mode matches every message by key
in any order already.)"""

from __future__ import annotations

import functools
from typing import Any

import pamqp.commands

from rrlab.rr.replay.recording import RecFrame

from . import normalize as norm
from .codec import frame_channel
from .transcript import Step, Transcript

#: client methods that settle a delivery, by its delivery tag
ACKS = frozenset({"Basic.Ack", "Basic.Nack", "Basic.Reject"})


def transcript_step(tr: Transcript, message: norm.Message, key: bytes) -> Step | None:
    """The recorded step a live message matches in transcript order, or None: the next one;
    for an ack, the unused ack with its key (channel, delivery tag, flags) anywhere; for any
    other message, the next unused step of its channel that is not an ack."""
    step = tr.upcoming()
    if step is None or tr.key(step) == key:
        return step
    if message.name in ACKS:
        return tr.earliest(key)
    step = channel_next(tr, message.channel)
    return step if step is not None and tr.key(step) == key else None


def channel_next(tr: Transcript, channel: int, name: str = "") -> Step | None:
    """The next unused recorded step of a channel that is not an ack (what a live message on
    that channel is compared with in transcript order); for an ack (`name`), its next ack."""
    ack = name in ACKS
    for later in tr.unused():
        if later.message.channel == channel and (later.message.name in ACKS) == ack:
            return later
    return None


#: Steps after a request searched for its answer (a client pipelines on other channels).
ANSWER_LOOKAHEAD = 16


def pull_answer(tr: Transcript, step: Step) -> None:
    """A step recorded answers the frame before them; a synchronous request's answer
    (`Basic.Cancel` -> `Basic.CancelOk`) that the broker sent after the client had already
    sent something on another channel was recorded after that, and belongs to this step:
    moved here (with its content frames), so the request is answered without waiting for the
    other channel's message (a live client that did not pipeline would wait forever). Searched
    up to the next step on the same channel; a request with `nowait` has no answer. Frames are
    told by their bytes (no summary read)."""
    ids = _answer_ids(step.message.name)
    if not ids or step.message.args.get("nowait"):
        return
    channel = step.message.channel
    if _answers(step.replies, channel, ids) is not None:
        return
    for pos in range(step.pos + 1, step.pos + 1 + ANSWER_LOOKAHEAD):
        later = tr.step(pos)
        if later is None or later.message.channel == channel:
            return
        at = _answers(later.replies, channel, ids)
        if at is not None:
            end = at + 1
            while end < len(later.replies) and _is_content(later.replies[end].raw, channel):
                end += 1
            step.replies.extend(later.replies[at:end])
            del later.replies[at:end]
            return


@functools.cache
def _answer_ids(name: str) -> tuple[bytes, ...]:
    """The class and method ids (as in a method frame at bytes 7..11) of the answers to a
    synchronous client method; () for any other."""
    request = method_class(name)
    if request is None or not getattr(request, "synchronous", False):
        return ()
    answers = (method_class(answer) for answer in getattr(request, "valid_responses", ()))
    return tuple(a.index.to_bytes(4, "big") for a in answers if a is not None)


def method_class(name: str) -> Any:
    """pamqp's class for a method name (`Basic.Cancel`), None for any other name."""
    group, _, method = name.partition(".")
    return getattr(getattr(pamqp.commands, group, None), method, None) if method else None


def _answers(replies: list[RecFrame], channel: int, ids: tuple[bytes, ...]) -> int | None:
    for n, frame in enumerate(replies):
        raw = frame.raw
        if raw[:1] == b"\x01" and raw[7:11] in ids and frame_channel(raw) == channel:
            return n
    return None


def _is_content(raw: bytes, channel: int) -> bool:
    return raw[:1] in (b"\x02", b"\x03") and frame_channel(raw) == channel
