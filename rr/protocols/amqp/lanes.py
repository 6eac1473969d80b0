"""Scheduling is not behaviour: in transcript order, each channel of a connection is a lane of
its own (a worker's threads share a socket, and how their channels' messages interleave on it
is the scheduler's), and a live client's acks of concurrent deliveries (Basic.Ack, Basic.Nack,
Basic.Reject) match the recorded ack of the same delivery tag wherever it stands in its
channel; the other messages of a channel keep their recorded order among themselves, whatever
acks are still to come: MQTT's ack lanes, for AMQP. (Lookup mode matches every message by key
in any order already.)"""

from __future__ import annotations

from rrlab.rr.replay.recording import RecFrame

from . import normalize as norm
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
    up to the next step on the same channel; a request with `nowait` has no answer."""
    channel, expected = step.message.channel, step.message.name + "Ok"
    if step.message.args.get("nowait") or _answers(step.replies, channel, expected) is not None:
        return
    for pos in range(step.pos + 1, step.pos + 1 + ANSWER_LOOKAHEAD):
        later = tr.step(pos)
        if later is None or later.message.channel == channel:
            return
        at = _answers(later.replies, channel, expected)
        if at is not None:
            end = at + 1
            while end < len(later.replies) and _is_content(later.replies[end], channel):
                end += 1
            step.replies.extend(later.replies[at:end])
            del later.replies[at:end]
            return


def _answers(replies: list[RecFrame], channel: int, expected: str) -> int | None:
    for n, frame in enumerate(replies):
        summary = frame.summary
        if summary.get("method") == expected and summary.get("channel") == channel:
            return n
    return None


def _is_content(frame, channel: int) -> bool:
    return (
        frame.summary.get("frame") in ("header", "body") and frame.summary.get("channel") == channel
    )
