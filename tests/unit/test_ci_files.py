"""The CI job for users (Dockerfile + GitHub workflow): what can be checked without a Docker
engine or GitHub — that they parse, run `make ci` from the locked dependencies, and name no
package registry."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_workflow_runs_make_ci_in_the_image_and_keeps_reports():
    flow = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    steps = flow["jobs"]["replay"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert any(r.startswith("docker build") for r in runs)
    assert any("make ci" in r and "--privileged" in r for r in runs)
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "out/replay/" and upload["if"] == "always()"


def test_dockerfile_installs_from_the_lock_with_hashes_and_runs_make_ci():
    text = (ROOT / "Dockerfile").read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert froms == ["FROM python:3.11-slim"]
    assert "uv pip sync --require-hashes requirements.lock" in text
    assert "UV_PYTHON_DOWNLOADS=never" in text
    assert text.rstrip().endswith('CMD ["make", "ci"]')
    for path in ("requirements.lock", "pyproject.toml", "tools/ensure-system-packages"):
        assert (ROOT / path).exists()


def test_no_ci_file_names_a_registry_address():
    for path in ("Dockerfile", ".github/workflows/ci.yml"):
        assert not re.search(r"https?://", (ROOT / path).read_text()), path
