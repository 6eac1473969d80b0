"""What a broken contract looks like: one code, the file at fault and one line saying why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# a file is not valid against its JSON Schema, or is not JSON at all / missing
E_SCHEMA = "E_ARCH_SCHEMA"
# cross-references: a name that does not exist where it should
E_UNKNOWN_POLICY = "E_ARCH_UNKNOWN_POLICY"
E_UNKNOWN_BUDGET = "E_ARCH_UNKNOWN_BUDGET"
E_UNKNOWN_REF = "E_ARCH_UNKNOWN_REF"
E_POLICY_ROLE = "E_ARCH_POLICY_ROLE"
E_UPSTREAM = "E_ARCH_UPSTREAM_NOT_ALLOWED"
E_BUDGET = "E_ARCH_BUDGET_EXCEEDED"
# the indexes disagree with the code they describe (rr.policy, rr.cassette, the worker)
E_RR_DRIFT = "E_ARCH_RR_DRIFT"
E_WORKER_DRIFT = "E_ARCH_WORKER_DRIFT"
E_TOPIC = "E_ARCH_TOPIC_UNDECLARED"
E_PROTOCOL = "E_ARCH_PROTOCOL_DISABLED"
# import contracts (import-linter)
E_IMPORT = "E_ARCH_IMPORT_CONTRACT"
E_IMPORT_CONFIG = "E_ARCH_IMPORT_CONFIG"
# committed JSON and the locks
E_NONCANONICAL = "E_ARCH_NONCANONICAL_JSON"
E_LOCK = "E_ARCH_LOCK_MISMATCH"


@dataclass(frozen=True, order=True, slots=True)
class Finding:
    """One broken contract. `path` is relative to the project root (POSIX separators)."""

    code: str
    path: str
    message: str
    contract: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "contract": self.contract,
            "message": self.message,
            "path": self.path,
        }

    def line(self) -> str:
        where = f"[{self.contract}] " if self.contract else ""
        return f"{self.code} {self.path}: {where}{self.message}"
