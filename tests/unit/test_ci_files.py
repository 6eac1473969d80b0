"""The Dockerfile (a generic rrlab image for users' CI, and this repository's own `make ci`
image) and the GitHub workflow: what can be checked without a Docker engine or GitHub — that
they parse, install from the locked dependencies, and name no package registry."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_workflow_runs_make_ci_in_the_image_and_keeps_reports():
    flow = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    steps = flow["jobs"]["replay"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert any(r.startswith("docker build --target lab-ci") for r in runs)
    assert any("make ci" in r and "--privileged" in r for r in runs)
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "out/replay/" and upload["if"] == "always()"


def _stages() -> dict[str, str]:
    """Dockerfile stage name -> its text (FROM line to the next FROM)."""
    text = (ROOT / "Dockerfile").read_text()
    parts = re.split(r"^(?=FROM )", text, flags=re.MULTILINE)[1:]
    stages = {}
    for part in parts:
        lines = part.rstrip().splitlines()
        while lines[-1].startswith("#"):  # the next stage's heading
            lines.pop()
        stages[lines[0].split(" AS ")[1].strip()] = "\n".join(lines).rstrip()
    return stages


def test_dockerfile_stages_and_the_default_image():
    stages = _stages()
    assert list(stages) == [
        "wheel",
        "lab-ci",
        "rrlab",
    ]  # the last one is what `docker build .` makes
    assert all(s.startswith("FROM python:3.11-slim AS ") for s in stages.values())
    assert all("UV_PYTHON_DOWNLOADS=never" in s for s in stages.values())
    assert "uv build --out-dir /dist" in stages["wheel"]  # the wheel from the sdist


def test_lab_ci_installs_from_the_lock_with_hashes_and_runs_make_ci():
    lab = _stages()["lab-ci"]
    assert "uv pip sync --require-hashes requirements.lock" in lab
    assert lab.rstrip().endswith('CMD ["make", "ci"]')
    for path in ("requirements.lock", "pyproject.toml", "tools/ensure-system-packages"):
        assert (ROOT / path).exists()


def test_generic_image_is_rrlab_from_the_wheel_and_the_lock():
    """The image a user's CI runs: rrlab only (no `make ci`, nothing of this repository's
    tests), dependencies from the lock with hashes, its entry point `rrlab` in /work."""
    generic = _stages()["rrlab"]
    assert "COPY --from=wheel /dist/" in generic and "COPY . ." not in generic
    assert "uv pip install --system --require-hashes -r /tmp/dist/requirements.lock" in generic
    assert "uv pip install --system --no-deps /tmp/dist/*.whl" in generic
    assert "WORKDIR /work" in generic and 'ENTRYPOINT ["rrlab"]' in generic
    assert "make" not in generic


def test_no_ci_file_names_a_registry_address():
    for path in ("Dockerfile", ".github/workflows/ci.yml"):
        assert not re.search(r"https?://", (ROOT / path).read_text()), path
