"""A cassette the fake broker cannot model: `rrlab serve` and `rrlab replay` say why in one line
(cassette, connection, frame, API and version, the cause); the traceback goes to the log only.

The cassette is made the way the proxy records (rr.record), from a Produce whose record batch
declares more records than it holds (a corrupt or truncated batch): the proxy records it with
a summary error, but the partition-log model cannot read its records.
"""

from __future__ import annotations

import datetime
import io
import json
import subprocess
import sys
from pathlib import Path

from kio.records.schema import NewRecordBatch, Record
from kio.records.writers import write_batch
from kio.schema.errors import ErrorCode
from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.produce.v9.response import (
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)
from kio.static.primitive import Records, TZAwareMicros, i8, i16, i32, i64

from rrlab.rr.cassette import CassetteWriter
from rrlab.rr.codecs import Direction, Proto
from rrlab.rr.protocols.kafka.codec import encode_request, encode_response
from rrlab.rr.record import recorder_for

from .conftest import RRLAB


def _batch() -> bytes:
    """A v2 batch of one record whose header declares five (record count patched)."""
    record = Record(
        attributes=i8(0),
        timestamp=TZAwareMicros.parse(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)),
        offset=i64(0),
        key=b"k",
        value=b"v",
        headers=(),
    )
    out = io.BytesIO()
    batch = NewRecordBatch(
        producer_id=i64(-1),
        producer_epoch=i16(-1),
        base_sequence=i32(-1),
        attributes=i16(0),
        records=(record,),
    )
    write_batch(out, batch)
    raw = bytearray(out.getvalue())
    raw[57:61] = (5).to_bytes(4, "big")
    return bytes(raw)


BATCH = _batch()


def _cassette(path: Path) -> Path:
    writer = CassetteWriter.create(path)
    writer.add_route(Proto.KAFKA, "127.0.0.1:19092", "127.0.0.1:9092")
    conn = writer.open_connection(Proto.KAFKA, "127.0.0.1:19092", "127.0.0.1:9092")
    recorder = recorder_for(writer, conn, Proto.KAFKA)
    part = PartitionProduceData(index=i32(0), records=Records(BATCH))
    request = ProduceRequest(
        transactional_id=None,
        acks=i16(-1),
        timeout=datetime.timedelta(seconds=5),
        topic_data=(TopicProduceData(name="t", partition_data=(part,)),),
    )
    answer = PartitionProduceResponse(
        index=i32(0),
        error_code=ErrorCode.none,
        base_offset=i64(0),
        log_append_time=None,
        log_start_offset=i64(0),
        record_errors=(),
        error_message=None,
    )
    response = ProduceResponse(
        responses=(TopicProduceResponse(name="t", partition_responses=(answer,)),),
        throttle_time=datetime.timedelta(0),
    )
    recorder.feed(Direction.C2S, encode_request(0, 9, 1, "c", request))
    recorder.feed(Direction.S2C, encode_response(0, 9, 1, response))
    recorder.close("closed by client")
    writer.finalize()
    return path


WHERE = "kafka conn 1 frame 1 (Produce v9 response): RecordsError: record 1 of 5"


def test_serve_names_the_cause_in_one_line_and_logs_the_traceback(tmp_path):
    cassette = _cassette(tmp_path / "cassette")
    log = tmp_path / "serve.jsonl"
    argv = [*RRLAB, "serve", "--cassette", str(cassette), "--port-offset", "7", "--log-file"]
    done = subprocess.run(
        [*argv, str(log)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"rrlab serve: cannot serve kafka from cassette {cassette}: ")
    assert WHERE in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["event"] == "start_failed" and WHERE in record["text"]
    assert "Traceback" in record["traceback"] and "_learn_produce" in record["traceback"]


def test_replay_closing_line_says_why_the_fake_broker_did_not_start(tmp_path):
    cassette = _cassette(tmp_path / "cassette")
    done = subprocess.run(
        [*RRLAB, "replay", "--cassette", str(cassette), "--", sys.executable, "-c", "pass"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    closing = done.stderr.strip().splitlines()[-1]
    assert closing.startswith("rrlab replay: the fake broker did not start: cannot serve kafka")
    assert WHERE in closing
    assert "Traceback" not in done.stderr


def test_the_batch_is_what_the_test_says():
    """The fixture itself: a batch declaring 5 records that holds one (so the model fails)."""
    from rrlab.rr.protocols.kafka.records import RecordsError, read_records, scan_record_set

    (batch,) = scan_record_set(BATCH).batches
    assert batch.record_count == 5
    try:
        read_records(batch)
    except RecordsError as err:
        assert "record 1 of 5" in str(err)
    else:
        raise AssertionError("the batch read whole")
