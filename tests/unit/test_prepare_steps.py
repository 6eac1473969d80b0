"""What a cassette's command needs from the network is fetched by its prepare step, before
`rrlab replay` runs the command where no network is reachable (on a fresh machine the Java
client used to call Maven inside the sandbox: "Maven could not resolve Apache Kafka jars")."""

from __future__ import annotations

import os
import subprocess

from replay.client_scenarios import SCENARIOS  # tests/ is on sys.path

JAVA = [s for s in SCENARIOS if s.name.startswith("client-kafka-java")]


def test_the_java_client_names_its_prepare_step_and_never_fetches_by_itself(tmp_path):
    """No jars: the client exits 2 at once naming `--prepare`, instead of running Maven."""
    assert JAVA and all(s.prepare == [s.argv[0], "--prepare"] for s in JAVA)
    env = {**os.environ, "RRLAB_KAFKA_LIBS": str(tmp_path / "no-jars-here")}
    proc = subprocess.run(
        [JAVA[0].argv[0], "out/output.txt"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--prepare` first" in proc.stderr and "Maven" in proc.stderr, proc.stderr
    assert not (tmp_path / "no-jars-here").exists()  # nothing was fetched
