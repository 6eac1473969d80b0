"""rr.protocols.kafka.stamp: bound values in kio entities (no sockets): a response stamped with
live values of another length still encodes and decodes; a request's byte fields are put back
whatever the length for its match key, a response's only where the length stays."""

from __future__ import annotations

import datetime

from kio.schema.errors import ErrorCode
from kio.schema.join_group.v9.request import JoinGroupRequest, JoinGroupRequestProtocol
from kio.schema.metadata.v12.response import MetadataResponse, MetadataResponseTopic
from kio.static.primitive import i32, i32Timedelta

from rrlab.rr.protocols.kafka.apis import JOIN_GROUP, METADATA
from rrlab.rr.protocols.kafka.codec import decode_response_body, encode_response
from rrlab.rr.protocols.kafka.normalize import request_key
from rrlab.rr.protocols.kafka.stamp import stamp_strings

REC, LIVE = "svc-d3565c6f", "svc-0a1b2c3d4e"


def swap(old: str, new: str):
    return lambda s: s.replace(old, new), lambda b: b.replace(old.encode(), new.encode())


def test_a_response_stamped_with_a_longer_value_encodes_and_reads_back():
    topic = MetadataResponseTopic(
        error_code=ErrorCode.none, name=f"reply.{REC}", topic_id=None, is_internal=False,
        partitions=(), topic_authorized_operations=i32(-2147483648),
    )  # fmt: skip
    recorded = MetadataResponse(
        throttle_time=datetime.timedelta(0), brokers=(), cluster_id="c", controller_id=i32(1),
        topics=(topic,),
    )  # fmt: skip
    text, _data = swap(REC, LIVE)
    stamped = stamp_strings(recorded, text)
    raw = encode_response(METADATA, 12, 7, stamped)
    (back,) = decode_response_body(METADATA, 12, raw).topics
    assert back.name == f"reply.{LIVE}"
    assert stamp_strings(recorded, lambda s: s) is recorded  # nothing to change: same object


def _join(member_topic: str) -> JoinGroupRequest:
    """A consumer's JoinGroup: its subscription names the topic in the protocol's bytes."""
    name = member_topic.encode()
    metadata = b"\x00\x01\x00\x00\x00\x01" + len(name).to_bytes(2, "big") + name
    protocol = JoinGroupRequestProtocol(name="range", metadata=metadata)
    return JoinGroupRequest(
        group_id="g", session_timeout=i32Timedelta.parse(datetime.timedelta(seconds=45)),
        rebalance_timeout=i32Timedelta.parse(datetime.timedelta(seconds=300)), member_id="",
        group_instance_id=None, protocol_type="consumer", protocols=(protocol,), reason=None,
    )  # fmt: skip


def test_a_request_matches_once_bound_values_in_its_bytes_are_put_back():
    """A live JoinGroup subscribing to `reply.<live client id>` (same length: a random id of a
    fixed format) has the recorded one's match key once the id is put back in its bytes."""
    other = REC.replace("d3", "e4")
    text, data = swap(other, REC)
    back = stamp_strings(_join(f"reply.{other}"), text, data, any_length=True)
    assert request_key(JOIN_GROUP, 9, back) == request_key(JOIN_GROUP, 9, _join(f"reply.{REC}"))


def test_response_bytes_change_only_where_the_length_stays():
    """A consumer protocol's bytes carry length-prefixed names: another length would break
    them, so a response's byte field keeps a value of another length as recorded."""
    recorded = _join(f"reply.{REC}")
    text, data = swap(REC, LIVE)
    assert stamp_strings(recorded, text, data).protocols[0].metadata == (
        recorded.protocols[0].metadata
    )
    longer = stamp_strings(recorded, text, data, any_length=True).protocols[0].metadata
    assert longer.endswith(f"reply.{LIVE}".encode())
