"""Publishes on a clock (issue N): a framework's heartbeat or status event is liveness,
recognised from the recording alone (`rr.protocols.amqp.clocked`, no sockets)."""

from __future__ import annotations

import json

from rrlab.rr.protocols.amqp.clocked import Clocked, Published

T0 = 1796294018.047566


def heartbeat(t: float, load: float, pid: int) -> bytes:
    """Celery 5's worker-heartbeat event body (the fields that vary from run to run)."""
    body = {
        "hostname": "celery@laptop",
        "utcoffset": 0,
        "pid": pid,
        "clock": 3,
        "freq": 2.0,
        "active": 0,
        "processed": 0,
        "loadavg": [load, 0.2, 0.1],
        "sw_ident": "py-celery",
        "timestamp": t,
        "type": "worker-heartbeat",
    }
    return json.dumps(body).encode()


def status(t: float, queued: int) -> bytes:
    return json.dumps({"queued": queued, "at": t, "node": "a"}).encode()


def result(task_id: str, date_done: str) -> bytes:
    return json.dumps(
        {"status": "SUCCESS", "result": 5, "task_id": task_id, "date_done": date_done}
    ).encode()


def test_one_recorded_heartbeat_is_clock_driven_and_any_live_values_are_accepted():
    clocked = Clocked.of([Published("celeryev", "worker.heartbeat", heartbeat(T0, 0.29, 15030))])
    live = heartbeat(T0 + 15.6, 0.3, 15055)
    assert clocked.accepts("celeryev", "worker.heartbeat", live)
    assert not clocked.accepts("celeryev", "worker.online", live)  # another destination
    assert not clocked.accepts("celeryev", "worker.heartbeat", b'{"pid": 1}')  # another shape


def test_a_heartbeat_the_recording_holds_none_of_is_liveness_on_a_recorded_exchange():
    """A recorded run shorter than the heartbeat period holds only the worker's status events;
    a live run that took longer sends a heartbeat too."""
    online = json.dumps({"type": "worker-online", "timestamp": T0, "pid": 1}).encode()
    clocked = Clocked.of([Published("celeryev", "worker.online", online)])
    live = heartbeat(T0 + 15.6, 0.3, 15055)
    assert clocked.accepts("celeryev", "worker.heartbeat", live)
    assert not clocked.accepts("other", "worker.heartbeat", live)  # an exchange never used
    assert not clocked.accepts("celeryev", "worker.heartbeat", b'{"pid": 1}')  # no clock value
    assert not clocked.accepts("celeryev", "worker.status", live)  # the key names no heartbeat


def test_a_recurring_status_event_differing_only_in_numbers_and_clock_is_clock_driven():
    recorded = [Published("ev", "status", status(T0 + 2 * i, i)) for i in range(3)]
    clocked = Clocked.of(recorded)
    assert clocked.accepts("ev", "status", status(T0 + 99, 7))


def test_a_single_event_that_names_no_heartbeat_stays_behaviour():
    assert not Clocked.of([Published("ev", "status", status(T0, 1))])


def test_results_that_differ_in_an_id_are_behaviour_though_they_carry_a_date():
    recorded = [
        Published("", "reply-q", result("a1", "2026-12-03T10:00:00.1")),
        Published("", "reply-q", result("b2", "2026-12-03T10:00:02.1")),
    ]
    assert not Clocked.of(recorded)


def test_a_recurring_publish_without_a_clock_value_is_behaviour():
    body = json.dumps({"n": 1}).encode()
    assert not Clocked.of([Published("", "q", body), Published("", "q", body)])


def online(load: float, pid: int, t: float) -> dict:
    """Celery 5's worker-online event, published once per run."""
    return {**json.loads(heartbeat(t, load, pid)), "type": "worker-online"}


def test_a_status_event_published_once_matches_with_other_numbers_only():
    recorded = online(1.48, 17801, T0)
    clocked = Clocked.of([Published("celeryev", "worker.online", json.dumps(recorded).encode())])
    assert not clocked.accepts("celeryev", "worker.online", json.dumps(recorded).encode())
    live = online(1.23, 17962, T0 + 30)
    assert clocked.measured("celeryev", "worker.online", recorded, live)
    assert not clocked.measured("celeryev", "worker.online", recorded, {**live, "type": "x"})
    assert not clocked.measured("celeryev", "worker.offline", recorded, live)


def test_a_result_is_no_status_event():
    body = json.loads(result("a1", "2026-12-03T10:00:00.1"))
    clocked = Clocked.of([Published("", "reply-q", json.dumps(body).encode())])
    assert not clocked.measured("", "reply-q", body, {**body, "result": 6})
