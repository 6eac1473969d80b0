"""The wheel, installed into a fresh venv outside the repository, runs the sample project's
tests offline: the pytest plugin is found by its entry point, and nothing comes from the
source tree. Built and installed from uv's cache only (`make venv` filled it), so it runs where
no network is reachable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from .sample_project import ROOT, copy_sample, run_pytest

#: what the wheel is built from: the source tree, without what is not the package's
NOT_SOURCE = (
    ".git",
    ".venv",
    "out",
    ".rrlab",
    "build",
    "dist",
    "cassettes",
    "tests",
    "bench",
    "examples",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
)


def _uv(*argv: str, venv=None) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build and install the wheel: pip install uv (make venv does)"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(UV_PYTHON_DOWNLOADS="never", UV_NO_CONFIG="1")
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
    proc = subprocess.run([uv, *argv], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"uv {' '.join(argv)}: {proc.stdout}{proc.stderr}"
    return proc


def test_sample_project_passes_offline_from_the_installed_wheel(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    dist = tmp_path / "dist"
    _uv("build", "--offline", "--wheel", "--quiet", "-o", str(dist), str(source))
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    _uv("venv", "--quiet", "--python", sys.executable, str(venv))
    _uv(
        "pip",
        "sync",
        "--offline",
        "--quiet",
        "--require-hashes",
        str(ROOT / "requirements.lock"),
        venv=venv,
    )
    _uv("pip", "install", "--offline", "--quiet", "--no-deps", str(wheel), venv=venv)
    python = str(venv / "bin" / "python")

    project = copy_sample(tmp_path / "orders-service")
    where = subprocess.run(
        [python, "-c", "import rrlab.pytest_plugin as p; print(p.__file__)"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    run = run_pytest(project, python=python, env={"CI": "true"}, offline=True)
    assert run.returncode == 0 and "3 passed" in run.stdout, run.stdout + run.stderr
