"""Reading back a checked frame line (`read_frame_line`, the replayer's hot path) gives what
`decode_frame_line` gives, in every format, and refuses what it refuses."""

from __future__ import annotations

import canonicaljson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rrlab.rr.cassette.errors import MalformedFrame
from rrlab.rr.cassette.format import (
    FrameRecord,
    decode_frame_line,
    encode_frame_line,
    encode_frame_line_v2,
    parse_summary,
    read_frame_line,
    read_frame_parts,
)
from rrlab.rr.codecs.base import Direction, Proto

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
summaries = st.dictionaries(
    st.text(max_size=10),
    st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=3), max_leaves=6),
    max_size=5,
)
records = st.builds(
    FrameRecord,
    seq=st.integers(0, 2**40),
    conn=st.integers(0, 2**20),
    dir=st.sampled_from(list(Direction)),
    t_us=st.integers(0, 2**50),
    proto=st.sampled_from(list(Proto)),
    summary=summaries,
    raw=st.binary(max_size=300),
    redacted=st.booleans(),
)


@given(record=records)
def test_format_3_line_reads_as_decoded(record: FrameRecord) -> None:
    line = encode_frame_line(
        record.conn, record.dir, record.proto, record.summary, record.raw, record.redacted
    )
    lineno, t_us, raw = record.seq + 1, record.t_us, record.raw
    read = read_frame_line(line, path="f", lineno=lineno, t_us=t_us, raw=raw)
    assert read == decode_frame_line(line, path="f", lineno=lineno, t_us=t_us, raw=raw) == record
    seq, direction, when, data, summary = read_frame_parts(
        line, path="f", lineno=lineno, t_us=t_us, raw=raw
    )
    assert (seq, direction, when, data) == (record.seq, record.dir, t_us, raw)
    assert parse_summary(summary) == record.summary  # left as its text until asked for


@pytest.mark.parametrize(
    "line",
    [
        b'{"conn":1,"dir":"c2s","proto":"amqp","size":2,"summary":{}}\n',  # 1 byte there
        b'{"conn":1,"dir":"c2s","proto":"amqp","size":1,"summary":{"a":}}\n',
        b'{"conn":1,"dir":"up","proto":"amqp","size":1,"summary":{}}\n',
        b'{"conn":1,"dir":"c2s","proto":"nope","size":1,"summary":{}}\n',
        b'{"conn":1,"dir":"c2s","proto":"amqp","raw":"QQ==","summary":{}}\n',  # format 2
    ],
)
def test_bad_format_3_lines_refused_alike(line: bytes) -> None:
    with pytest.raises(MalformedFrame) as decoded:
        decode_frame_line(line, path="f", lineno=3, t_us=0, raw=b"A")
    with pytest.raises(MalformedFrame) as read:
        read_frame_line(line, path="f", lineno=3, t_us=0, raw=b"A")
    assert str(read.value) == str(decoded.value)


@given(record=records)
def test_format_2_line_reads_as_decoded(record: FrameRecord) -> None:
    line = encode_frame_line_v2(
        record.conn, record.dir, record.proto, record.summary, record.raw, record.redacted
    )
    lineno = record.seq + 1
    read = read_frame_line(line, path="f", lineno=lineno, t_us=record.t_us)
    assert read == decode_frame_line(line, path="f", lineno=lineno, t_us=record.t_us) == record


@given(record=records)
def test_format_1_line_reads_as_decoded(record: FrameRecord) -> None:
    line = canonicaljson.encode_canonical_json(record.to_dict(timed=True)) + b"\n"
    read = read_frame_line(line, path="f", lineno=7)
    assert read == decode_frame_line(line, path="f", lineno=7) == record


@pytest.mark.parametrize(
    "line",
    [
        b'{"conn":1,"dir":"c2s","proto":"amqp","raw":"QQ=","summary":{}}\n',  # torn base64
        b'{"conn":1,"dir":"c2s","proto":"amqp","raw":"QQ==","summary":{"a":}}\n',
        b'{"conn":1,"dir":"up","proto":"amqp","raw":"QQ==","summary":{}}\n',
        b'{"conn":1,"dir":"c2s","proto":"nope","raw":"QQ==","summary":{}}\n',
    ],
)
def test_bad_lines_refused_alike(line: bytes) -> None:
    with pytest.raises(MalformedFrame) as decoded:
        decode_frame_line(line, path="f", lineno=3, t_us=0)
    with pytest.raises(MalformedFrame) as read:
        read_frame_line(line, path="f", lineno=3, t_us=0)
    assert str(read.value) == str(decoded.value)


def test_other_spellings_read_through_the_full_decoder() -> None:
    line = b'{"summary": {"a": 1}, "raw": "QQ==", "proto": "mqtt", "dir": "s2c", "conn": 2}\n'
    assert read_frame_line(line, path="f", lineno=1, t_us=5) == decode_frame_line(
        line, path="f", lineno=1, t_us=5
    )
