"""`rrlab serve --repeat`: a fake broker kept running for development serves the cassette again,
from the start, to the next run once every recorded connection has been served and closed.

Real clients (the demo worker, kafka-python in a consumer group) against the fake broker, run
from a project of their own (tests/replay/test_replay_stored_command.py: `_project`); no broker.
"""

from __future__ import annotations

from rrlab.rr.cassette.reader import load_manifest

from .conftest import fake_broker, run_client
from .test_replay_stored_command import KAFKA_GROUP, _project


def test_serve_repeat_serves_the_cassette_again_to_the_next_run(tmp_path):
    """A consumer group's run, twice against one fake broker: the second run joins the group
    and reads the topic from the start again, as the first did."""
    project = _project(tmp_path, KAFKA_GROUP)
    cassette = project / "cassettes" / KAFKA_GROUP
    command = load_manifest(cassette).command
    artifact = f"out/{KAFKA_GROUP}/aggregate.json"
    recorded = (cassette / "artifacts" / artifact).read_bytes()
    with fake_broker(cassette, tmp_path, "--repeat") as served:
        for run in (1, 2):
            client = run_client(list(command.argv), command.workdir(cassette))
            assert client.returncode == 0, f"run {run}:\n{client.stdout}\n{client.stderr}"
            assert (project / artifact).read_bytes() == recorded, f"run {run} differs"
            (project / artifact).unlink()
    assert served.exit_code == 0, served.stdout + served.stderr
    assert served.report["sessions"] == 2
    assert served.report["verdict"] == "ok" and served.report["totals"]["missed"] == 0
    assert "session 2: every recorded connection was served" in served.stdout
    assert "(2 sessions, --repeat)" in served.stdout
