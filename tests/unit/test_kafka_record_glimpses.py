"""A summary's records are read by `record_glimpses` (no value copied, no Record built): the same
offsets, keys, value lengths and header keys as `read_records`, and where the bytes do not read,
the same RecordsError, whatever the bytes."""

from __future__ import annotations

import dataclasses
import random

import pytest
from kafka_samples import record_batch

from rrlab.rr.protocols.kafka.records import (
    RecordsError,
    read_records,
    record_glimpses,
    scan_record_set,
)


def as_read(batch, limit: int) -> object:
    try:
        return [
            (r.offset, r.key, -1 if r.value is None else len(r.value), [k for k, _v in r.headers])
            for r in read_records(batch, limit)
        ]
    except RecordsError as err:
        return ("error", str(err))


def as_glimpsed(batch, limit: int) -> object:
    try:
        return record_glimpses(batch, limit)
    except RecordsError as err:
        return ("error", str(err))


def test_glimpses_of_a_batch() -> None:
    (batch,) = scan_record_set(record_batch(40, [b"a" * 20, b"", b"b" * 300], key=b"k1")).batches
    assert record_glimpses(batch, 10) == [
        (40, b"k1", 20, ["h"]),
        (41, b"k1", 0, ["h"]),
        (42, b"k1", 300, ["h"]),
    ]
    assert record_glimpses(batch, 2) == as_read(batch, 2)


@pytest.mark.parametrize("seed", range(4))
def test_glimpses_agree_with_read_records_on_damaged_bytes(seed: int) -> None:
    (batch,) = scan_record_set(
        record_batch(7, [bytes([n]) * (n * 13 % 200) for n in range(12)])
    ).batches
    body = bytes(batch.body)
    rnd = random.Random(seed)
    errors = 0
    for _ in range(1500):
        damaged = bytearray(body[: rnd.randrange(len(body) + 1)] if rnd.random() < 0.3 else body)
        for _ in range(rnd.randrange(1, 4)):
            if damaged:
                damaged[rnd.randrange(len(damaged))] = rnd.randrange(256)
        copy = dataclasses.replace(batch, body=memoryview(bytes(damaged)))
        limit = rnd.choice([1, 5, 10, 20])
        read = as_read(copy, limit)
        assert as_glimpsed(copy, limit) == read
        errors += read[0] == "error"
    assert errors  # the damage did reach the error paths
