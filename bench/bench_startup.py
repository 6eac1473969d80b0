"""Replay start-up, measured in one run: is `rrlab replay` of a small cassette cheaper than
starting the real broker?

Paired runs, medians, for one small committed cassette (default cassettes/worker-kafka-tansu,
200 messages):
  (a) `rrlab replay --cassette C -- CMD`, CMD being the cassette's own worker command, run under
      `/usr/bin/time` so that
  (c) the command's own run time (its wall inside that replay) is known from the same run;
  (b) "start Tansu, run the same worker directly against it, stop Tansu" (a private Tansu from
      rrlab.brokers.control.start_kafka on 127.0.0.1:9092, memory storage);
  (d) `python -X importtime` of `rrlab serve --cassette C` until it listens: the sum of the
      top-level imports (what the fake broker's own start-up costs in imports);
  (e) `rrlab replay --all` over COPIES copies of C (what `rrlab ci` / `make ci` pays per
      cassette), its wall divided by COPIES; and, for reference, the worker's own wall against
      Tansu inside (b).
With --baseline ROOT, (a), (c), (d) and (e) are measured for that checkout too (its .venv, its
rrlab and its own copy of the cassette, in the format it reads), interleaved with ours:
before/after from one sitting.

Targets: replay <= 0.6 x the Tansu path; replay - command <= 0.3 s; serve imports <= 0.3 s.
Two rows keep the overhead honest: replay starts the command before its fake broker listens
(the command's start-up overlaps the fake broker's), so part of the fake broker's start-up is
inside (c); "replay - the worker's own run in (b)" is what replay adds over the same worker
against a real broker. "floor" is the lowest replay / Tansu can be (zero overhead): when the
worker's own run is over 0.6 of the Tansu path, the first target cannot be met by replay.
Starts Tansu on 9092: run it in a private network namespace where others share the machine.

    .venv/bin/python bench/bench_startup.py [--runs 5] [--copies 4] [--cassette DIR]
        [--baseline ROOT]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIME = shutil.which("time") or "/usr/bin/time"
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")
LISTENING = "rrlab serve: listening "


@dataclass
class Figures:
    """One checkout's samples (seconds)."""

    replay: list[float] = field(default_factory=list)
    command: list[float] = field(default_factory=list)
    overhead_cpu: list[float] = field(default_factory=list)
    serve_imports: list[float] = field(default_factory=list)
    per_cassette: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        values = getattr(self, name)
        return statistics.median(values) if values else float("nan")

    @property
    def overhead(self) -> list[float]:
        return [r - c for r, c in zip(self.replay, self.command, strict=True)]


def stored_command(cassette: Path) -> list[str]:
    manifest = json.loads((cassette / "cassette.json").read_bytes())
    command = manifest.get("command")
    if not command or command.get("cwd") != "../..":
        raise SystemExit(f"{cassette}: needs a stored command run from the repository root")
    return list(command["argv"])


def replay_once(
    root: Path, cassette: Path, argv: list[str], work: Path
) -> tuple[float, float, float]:
    """(replay wall, the command's own wall inside it, replay's CPU beyond the command's) for
    one `rrlab replay`: CPU (user + sys of the whole process tree, from wait4) is what a loaded
    machine inflates least."""
    timed = work / "command.time"
    timed.unlink(missing_ok=True)
    cmd = [str(root / ".venv/bin/python"), "-m", "rrlab", "replay", "--cassette", str(cassette)]
    cmd += ["--report", str(work / "rr-report.json"), "--metrics", str(work / "rr-metrics.txt")]
    cmd += ["--write-root", str(work), "--", TIME, "-f", "%e %U %S", "-o", str(timed), *argv]
    errors = work / "replay.err"
    start = time.perf_counter()
    with open(errors, "w") as err:
        proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"replay failed in {root}:\n{errors.read_text()[-3000:]}")
    cmd_wall, cmd_user, cmd_sys = (float(v) for v in timed.read_text().split()[-3:])
    cpu = usage.ru_utime + usage.ru_stime - cmd_user - cmd_sys
    return wall, cmd_wall, cpu


def replay_all_once(root: Path, project: Path, copies: int, work: Path) -> float:
    """Wall of `rrlab replay --all` over the project's copies, per cassette."""
    cmd = [str(root / ".venv/bin/python"), "-m", "rrlab", "replay", "--all", "cassettes"]
    cmd += ["--report", str(work / "all.json"), "--reports-dir", str(work / "all")]
    cmd += ["--write-root", str(work)]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=project, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"replay --all failed ({done.returncode}) in {root}:\n{done.stdout[-3000:]}"
        )
    return wall / copies


def project_of(root: Path, cassette: Path, copies: int, work: Path) -> Path:
    """A project (root's .venv and worker linked) holding `copies` copies of the cassette, each
    storing its command to run from the project (`../..`)."""
    project = work / f"project-{root.name}"
    for link in (".venv", "worker"):
        (project / link).parent.mkdir(parents=True, exist_ok=True)
        (project / link).symlink_to(root / link)
    for n in range(copies):
        shutil.copytree(cassette, project / "cassettes" / f"{cassette.name}-{n}")
    return project


def tansu_once(argv: list[str], work: Path) -> tuple[float, float]:
    """Wall of: start a private Tansu, run the worker directly against it, stop Tansu; and the
    worker's own wall inside it."""
    from rrlab.brokers import control

    home = Path(tempfile.mkdtemp(prefix="tansu-", dir=work))
    env = {**os.environ, "KAFKA_BOOTSTRAP": "127.0.0.1:9092"}
    start = time.perf_counter()
    record = control.start_kafka(home, port=9092)
    try:
        began = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        worker = time.perf_counter() - began
    finally:
        control.stop(record)
    wall = time.perf_counter() - start
    shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"worker against Tansu failed ({done.returncode}):\n{done.stderr}")
    return wall, worker


def serve_imports_once(root: Path, cassette: Path, work: Path, listeners: int) -> float:
    """Seconds of imports (`-X importtime`, top-level cumulative) until serve listens."""
    cmd = [str(root / ".venv/bin/python"), "-X", "importtime", "-m", "rrlab", "serve"]
    cmd += ["--cassette", str(cassette), "--report", str(work / "serve-report.json")]
    err_path = work / "importtime.txt"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        seen = 0
        for line in proc.stdout:
            seen += line.startswith(LISTENING)
            if seen >= listeners:
                break
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    if seen < listeners:
        raise SystemExit(f"serve did not listen in {root}:\n{err_path.read_text()[-3000:]}")
    total_us = 0
    for line in err_path.read_text().splitlines():
        m = IMPORT_LINE.match(line)
        if m and not m.group(3):  # a top-level import: its cumulative time covers its children
            total_us += int(m.group(2))
    return total_us / 1e6


def _own_copy(root: Path, cassette: Path) -> Path:
    """`root`'s copy of a cassette of this checkout (same relative path), else the cassette."""
    try:
        own = root / cassette.relative_to(ROOT)
    except ValueError:
        return cassette
    return own if (own / "cassette.json").is_file() else cassette


def listeners_of(cassette: Path) -> int:
    manifest = json.loads((cassette / "cassette.json").read_bytes())
    return len({c["listen"] for c in manifest["connections"]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="paired runs (default 5)")
    parser.add_argument(
        "--copies", type=int, default=4, help="cassettes in the replay --all run (default 4)"
    )
    parser.add_argument("--cassette", type=Path, default=ROOT / "cassettes" / "worker-kafka-tansu")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="ROOT",
        help="another checkout (with its .venv) measured alongside: before/after in one run",
    )
    args = parser.parse_args()
    cassette = args.cassette.resolve()
    argv = stored_command(cassette)
    listeners = listeners_of(cassette)
    roots = {"this": ROOT}
    if args.baseline:
        roots = {"baseline": args.baseline.resolve(), **roots}
    figures = {name: Figures() for name in roots}
    # each checkout replays its own copy of the cassette when it has one (the same frames in
    # the cassette format that checkout reads: a baseline may predate the current format)
    copies = {n: _own_copy(r, cassette) for n, r in roots.items()}
    tansu: list[float] = []
    tansu_worker: list[float] = []
    work = Path(tempfile.mkdtemp(prefix="rrlab-bench-startup-"))
    try:
        projects = {n: project_of(r, copies[n], args.copies, work) for n, r in roots.items()}
        for run in range(args.runs):
            order = list(roots.items())
            if run % 2:
                order.reverse()  # neither checkout always goes first
            for name, root in order:
                wall, command, cpu = replay_once(root, copies[name], argv, work)
                figures[name].replay.append(wall)
                figures[name].command.append(command)
                figures[name].overhead_cpu.append(cpu)
                imports = serve_imports_once(root, copies[name], work, listeners)
                figures[name].serve_imports.append(imports)
                per = replay_all_once(root, projects[name], args.copies, work)
                figures[name].per_cassette.append(per)
            wall, worker = tansu_once(argv, work)
            tansu.append(wall)
            tansu_worker.append(worker)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    t = statistics.median(tansu)
    print(f"cassette {cassette.name}, median of {args.runs} paired runs (seconds)")
    print(f"{'figure':38} " + " ".join(f"{n:>9}" for n in roots) + "  target")
    rows = [
        ("(b) Tansu: start, run worker, stop", [t for _ in roots], ""),
        ("    the worker's own run in (b)", [statistics.median(tansu_worker) for _ in roots], ""),
        ("(a) rrlab replay", [f.median("replay") for f in figures.values()], ""),
        ("(c) the command's own run in (a)", [f.median("command") for f in figures.values()], ""),
        (
            "replay / Tansu path",
            [f.median("replay") / t for f in figures.values()],
            "<= 0.6",
        ),
        (
            "replay - command (overhead)",
            [statistics.median(f.overhead) for f in figures.values()],
            "<= 0.3",
        ),
        (
            "    replay - the worker's own run in (b)",
            [f.median("replay") - statistics.median(tansu_worker) for f in figures.values()],
            "",
        ),
        (
            "    floor: (b)'s worker run / (b)",
            [statistics.median(tansu_worker) / t for _ in roots],
            "(replay / Tansu can get no lower)",
        ),
        (
            "    replay's CPU beyond the command's",
            [f.median("overhead_cpu") for f in figures.values()],
            "",
        ),
        (
            "(d) serve imports (-X importtime)",
            [f.median("serve_imports") for f in figures.values()],
            "<= 0.3",
        ),
        (
            f"(e) per cassette, replay --all of {args.copies}",
            [f.median("per_cassette") for f in figures.values()],
            "",
        ),
    ]
    for label, values, target in rows:
        print(f"{label:38} " + " ".join(f"{v:>9.2f}" for v in values) + f"  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
