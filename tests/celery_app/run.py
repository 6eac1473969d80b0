"""Worker and client in one command, as a user runs a Celery application for a test: start the
worker with the `celery` command and Celery's defaults (prefork pool, mingle, gossip,
heartbeats), wait until it consumes, run the client, collect the output, stop the worker warmly.

With a result backend (`--backend rpc://`, the default) the client writes OUT; with none
(`--backend none`) the worker writes one file per task and OUT is those files merged, in order
of the task argument `order`. --no-worker runs the client alone (a replay that must not pass).
The worker's log goes to OUT.worker.log. Exit 0 when everything came back, else non-zero.

Usage: python run.py OUT [--backend rpc://|none] [--count N] [--unit-cents C] [--no-worker]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
READY_TIMEOUT = 90.0  # seconds for the worker to start consuming (prefork on a loaded machine)
OUTPUT_TIMEOUT = 60.0  # seconds for the worker to write every task's output (no backend)
STOP_TIMEOUT = 30.0  # seconds for a warm shutdown


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--backend", default="rpc://", help="Celery result backend URL, or none")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--unit-cents", type=int, default=250)
    p.add_argument("--no-worker", action="store_true", help="run the client alone")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rrcelery-") as scratch:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            "RRLAB_CELERY_BACKEND": args.backend,
            "RRLAB_CELERY_READY": str(Path(scratch) / "ready"),
            "RRLAB_CELERY_OUT": str(Path(scratch) / "tasks"),
        }
        worker = None if args.no_worker else _start_worker(env, Path(f"{out}.worker.log"))
        try:
            if worker is not None and not _wait_ready(worker, Path(env["RRLAB_CELERY_READY"])):
                return 1
            client = [sys.executable, str(HERE / "client.py"), str(out), "--count", str(args.count)]
            client += ["--unit-cents", str(args.unit_cents)]
            code = subprocess.run(client, env=env).returncode
            if code == 0 and args.backend == "none":
                code = _merge(Path(env["RRLAB_CELERY_OUT"]), args.count, out)
        finally:
            stopped = 0 if worker is None else _stop(worker)
    if code == 0 and stopped != 0:
        print(f"run.py: the worker exited {stopped} (see {out}.worker.log)", file=sys.stderr)
        return 1
    return code


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    celery = Path(sys.executable).with_name("celery")
    argv = [str(celery), "-A", "rrcelery", "worker", "--loglevel", "INFO"]
    with log.open("wb") as sink:
        return subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)


def _wait_ready(worker: subprocess.Popen, ready: Path) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready.exists():
        if worker.poll() is not None or time.monotonic() > deadline:
            print("run.py: the worker did not start consuming", file=sys.stderr)
            return False
        time.sleep(0.1)
    return True


def _merge(tasks: Path, count: int, out: Path) -> int:
    """The worker's per-task files as one JSON list, once all of them are there."""
    deadline = time.monotonic() + OUTPUT_TIMEOUT
    names = [tasks / f"{n}.json" for n in range(count)]
    while not all(name.exists() for name in names):
        if time.monotonic() > deadline:
            missing = [name.name for name in names if not name.exists()]
            print(f"run.py: the worker wrote no output for {missing}", file=sys.stderr)
            return 1
        time.sleep(0.1)
    results = [json.loads(name.read_text()) for name in names]
    out.write_text(json.dumps(results, sort_keys=True, separators=(",", ":")) + "\n")
    return 0


def _stop(worker: subprocess.Popen) -> int:
    """Warm shutdown (SIGTERM: finish running tasks, close connections), then SIGKILL."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return worker.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
