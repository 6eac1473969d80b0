"""Replay against recording, measured in one run: is the fake broker ever the bottleneck?

For each driver (Kafka on Tansu, AMQP on RabbitMQ, MQTT on amqtt) the unmodified worker runs
COUNT messages twice: through `rrlab proxy` to the real broker (record), then against
`rrlab serve` on the cassette just made, with the brokers stopped (replay). Per run: the
worker's wall time and its own CPU time (user + sys, from wait4), and the fake broker's RSS
sampled while it serves (start = after listening, before the first client byte).

Targets: replay wall <= 1.25 x the worker's own CPU time during replay (the fake broker never
the bottleneck); replay/record wall <= 0.5 for AMQP and MQTT; fake broker RSS flat while it
serves (the largest cassette here is ~100k frames: AMQP at COUNT 12,500).

    .venv/bin/python bench/bench_replay.py [--count 10000] [--drivers kafka amqp mqtt]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
ROUTES = {
    "kafka": ("--kafka", "19092=127.0.0.1:9092"),
    "amqp": ("--amqp", "15673=127.0.0.1:5672"),
    "mqtt": ("--mqtt", "11883=127.0.0.1:1883"),
}


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    rss_mb: list[float] = field(default_factory=list)
    rss_start_mb: float = 0.0
    serve_cpu_s: float = 0.0
    frames: int = 0
    verdict: str = ""


def run_worker(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall, user+sys CPU) of one worker process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"worker failed ({proc.returncode}): {argv}\n{err}")
    return wall, usage.ru_utime + usage.ru_stime


def start_and_wait(argv: list[str], marker: str, want: int, log: Path) -> subprocess.Popen:
    out = open(log, "w")  # noqa: SIM115
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while log.read_text().count(marker) < want:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{argv[:4]} did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return proc


def sample_rss(pid: int, into: list[float], stop: threading.Event) -> None:
    ps = psutil.Process(pid)
    while not stop.is_set():
        try:
            into.append(ps.memory_info().rss / 1e6)
        except psutil.NoSuchProcess:
            return
        stop.wait(0.1)


def bench_driver(driver: str, count: int, work: Path) -> tuple[Run, Run]:
    from rrlab.brokers import control

    flag, route = ROUTES[driver]
    cassette = work / f"cassette-{driver}"
    worker = [PY, "-m", "worker", "--driver", driver, "--count", str(count), "--seed", "3"]
    control.up([driver], out=None)
    try:
        proxy = start_and_wait(
            [PY, "-m", "rrlab", "proxy", flag, route, "--cassette", str(cassette),
             "--write-root", str(work), "--log-file", str(work / f"proxy-{driver}.log")],
            "listening", 1, work / f"proxy-{driver}.out",
        )  # fmt: skip
        try:
            wall, cpu = run_worker([*worker, "--out", str(work / f"rec-{driver}")], ROOT)
        finally:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(60)
    finally:
        control.down([driver], out=None)
    record = Run(wall, cpu)
    record.frames = json.loads((cassette / "cassette.json").read_bytes())["frame_count"]

    report = work / f"report-{driver}.json"
    serve = start_and_wait(
        [PY, "-m", "rrlab", "serve", "--cassette", str(cassette), "--report", str(report)],
        "listening", 1 if driver != "kafka" else 2, work / f"serve-{driver}.out",
    )  # fmt: skip
    rss: list[float] = []
    stop = threading.Event()
    ps = psutil.Process(serve.pid)
    start_rss = ps.memory_info().rss / 1e6
    cpu0 = ps.cpu_times()
    sampler = threading.Thread(target=sample_rss, args=(serve.pid, rss, stop), daemon=True)
    sampler.start()
    try:
        wall, cpu = run_worker([*worker, "--out", str(work / f"rep-{driver}")], ROOT)
        cpu1 = ps.cpu_times()
    finally:
        stop.set()
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
    replay = Run(wall, cpu, rss, start_rss)
    replay.serve_cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    replay.verdict = json.loads(report.read_bytes())["verdict"]
    same = (work / f"rec-{driver}/aggregate.json").read_bytes() == (
        work / f"rep-{driver}/aggregate.json"
    ).read_bytes()
    replay.verdict += "" if same else " (aggregate DIFFERS)"
    return record, replay


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--amqp-count", type=int, default=12_500, help="~100k frames")
    parser.add_argument("--drivers", nargs="+", default=["kafka", "amqp", "mqtt"])
    args = parser.parse_args()
    work = ROOT / "out" / f"bench-replay-{os.getpid()}"
    work.mkdir(parents=True)
    rows = []
    try:
        for driver in args.drivers:
            count = args.amqp_count if driver == "amqp" else args.count
            record, replay = bench_driver(driver, count, work)
            rows.append((driver, count, record, replay))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = (
        f"{'driver':6} {'msgs':>6} {'frames':>7} {'record s':>9} {'replay s':>9} "
        f"{'worker cpu s':>12} {'wall/cpu':>8} {'replay/rec':>10} {'serve cpu s':>11} "
        f"{'serve RSS MB start/max/end':>27}  verdict"
    )
    print(head)
    for driver, count, rec, rep in rows:
        rss = rep.rss_mb or [rep.rss_start_mb]
        print(
            f"{driver:6} {count:>6} {rec.frames:>7} {rec.wall_s:>9.2f} {rep.wall_s:>9.2f} "
            f"{rep.cpu_s:>12.2f} {rep.wall_s / rep.cpu_s:>8.2f} {rep.wall_s / rec.wall_s:>10.2f} "
            f"{rep.serve_cpu_s:>11.2f} "
            f"{f'{rep.rss_start_mb:.0f}/{max(rss):.0f}/{rss[-1]:.0f}':>27}  {rep.verdict}"
        )
    print("targets: wall/cpu <= 1.25; replay/rec <= 0.5 (amqp, mqtt); serve RSS flat")
    return 0


if __name__ == "__main__":
    sys.exit(main())
