"""The sample project of rrlab's pytest plugin (examples/orders-service), copied and run as a
user would: its own pytest, in its own directory, the plugin found by its entry point."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "orders-service"
TEST_FILE = Path("tests") / "test_orders.py"
#: one cassette per test of the sample, as the plugin names them
SAMPLE_TESTS = (
    "test_order_is_billed_over_amqp",
    "test_order_is_logged_on_kafka",
    "test_order_is_shown_over_mqtt",
)
CASSETTES = Path("tests") / "cassettes" / "test_orders"


def copy_sample(dst: Path, *, cassettes: bool = True) -> Path:
    """The sample in `dst`, with its committed cassettes or without any."""
    skip = ["__pycache__", ".pytest_cache"] + ([] if cassettes else ["cassettes"])
    shutil.copytree(SAMPLE, dst, ignore=shutil.ignore_patterns(*skip))
    return dst


def recorded_cassettes(project: Path) -> list[str]:
    return sorted(p.parent.name for p in (project / CASSETTES).glob("*/cassette.json"))


def run_pytest(
    project: Path,
    *args: str,
    python: str = sys.executable,
    offline: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m pytest ARGS` in `project`; `offline`: in a new network namespace that has only
    loopback (no broker, no network can answer there)."""
    argv = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    if offline:
        unshare = shutil.which("unshare")
        assert unshare, "unshare (util-linux) is needed to run the sample with no network"
        argv = [unshare, "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTHONPATH")}
    environ.update(env or {})
    return subprocess.run(
        argv, cwd=project, env=environ, capture_output=True, text=True, timeout=600
    )


def change_amount(project: Path) -> None:
    """The sample's order with another amount: what its recorded messages no longer say."""
    test_file = project / TEST_FILE
    text = test_file.read_text()
    assert "amount_cents=2400" in text
    test_file.write_text(text.replace("amount_cents=2400", "amount_cents=2500"))
