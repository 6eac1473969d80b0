"""Architecture contracts (`rrlab arch check`): the manifest under `arch/` says which contracts are
enabled and which indexes they read; `check` validates them and compares the locks.

Only reads files under a project root (never imports proxy, replayer, brokers or the worker), so
it can check a temporary copy of the repository as well as this checkout.
"""

from __future__ import annotations

from .check import CheckResult, run_check
from .findings import Finding

__all__ = ["CheckResult", "Finding", "run_check"]
