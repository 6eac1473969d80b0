"""`rrlab arch check`: validate arch/ against its schemas, cross-reference it with the code and the
committed cassettes, run the import contracts, check canonical JSON, compare (or write) the locks.

Every check reads files under one root; nothing here opens a socket or imports another layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrlab.rr.atomic_file import write_atomic
from rrlab.rr.usage import UsageError

from . import contract_msg, contract_rr, locks
from . import imports as imp
from .files import check_canonical as canonical_findings
from .findings import E_IMPORT, E_IMPORT_CONFIG, E_LOCK, E_SCHEMA, E_UNKNOWN_REF, Finding
from .run import (
    AGGREGATES,
    CASSETTE_MANIFESTS,
    KNOWN_CONTRACTS,
    LOCK_SCHEMA,
    MANIFEST,
    MANIFEST_SCHEMA,
    Run,
)

IMPORT_LOCK_SUFFIX = "#tool.importlinter"


@dataclass
class CheckResult:
    """What one run found; `ok` when no contract is broken."""

    root: Path
    findings: list[Finding]
    enabled: dict[str, bool]
    counts: dict[str, int] = field(default_factory=dict)
    lock_changes: list[locks.LockChange] = field(default_factory=list)
    locks_written: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "contracts": dict(sorted(self.enabled.items())),
            "counts": dict(sorted(self.counts.items())),
            "findings": [f.to_dict() for f in sorted(self.findings)],
            "format": "rrlab.arch.report/1",
            "lock_changes": [c.to_dict() for c in self.lock_changes],
            "locks_written": self.locks_written,
            "ok": self.ok,
        }


def load_manifest(run: Run) -> bool:
    """Validate the manifest and the indexes of the enabled contracts; False if unusable."""
    if not (run.p.root / MANIFEST).is_file():
        raise UsageError(f"{run.p.root}: no {MANIFEST} (is this the project root? --root DIR)")
    manifest = run.validate(MANIFEST, MANIFEST_SCHEMA, "")
    if manifest is None:
        return False
    run.manifest = manifest
    for name, contract in manifest["contracts"].items():
        if name not in KNOWN_CONTRACTS:
            run.add(
                E_UNKNOWN_REF,
                MANIFEST,
                f"unknown contract {name!r}; known: {', '.join(KNOWN_CONTRACTS)}",
                name,
            )
            continue
        run.enabled[name] = bool(contract["enabled"])
    for name in KNOWN_CONTRACTS:
        run.enabled.setdefault(name, False)
    for name, contract in manifest["contracts"].items():
        if not run.on(name):
            continue
        for rel, schema_rel in contract["indexes"].items():
            value = run.validate(rel, schema_rel, name)
            if value is not None:
                run.indexes[name] = value
    return True


# -- import contracts ------------------------------------------------------------------------


def check_imports(run: Run) -> dict[str, Any] | None:
    """Run the claimed import contracts; return the config table (for the lock) if readable."""
    config = run.manifest["import_config"]
    try:
        section = imp.read_config(run.p.root, config)
    except imp.ImportConfigError as exc:
        run.add(E_IMPORT_CONFIG, config, str(exc), "")
        return None
    configured = imp.contract_ids(section)
    owner: dict[str, str] = {}
    for name, contract in run.manifest["contracts"].items():
        for cid in contract["import_contracts"]:
            owner[cid] = name
            if cid not in configured:
                run.add(
                    E_IMPORT_CONFIG,
                    config,
                    f"import contract {cid!r} named by the "
                    "manifest is not configured in [tool.importlinter]",
                    name,
                )
    for cid in configured:
        if cid not in owner:
            what = f"import contract {cid!r}" if cid else "an import contract without an id"
            run.add(
                E_IMPORT_CONFIG,
                config,
                f"{what} is not claimed by any contract of {MANIFEST}",
                "",
            )
    run_ids = [cid for cid in configured if cid in owner and run.on(owner[cid])]
    try:
        broken = imp.run_contracts(run.p.root, config, run_ids)
    except imp.ImportConfigError as exc:
        run.add(E_IMPORT_CONFIG, config, str(exc), "")
        return section
    run.counts["import_contracts"] = len(run_ids)
    for b in broken:
        for path, why in b.by_file(run.p.root).items():
            run.add(E_IMPORT, path, f"{b.contract_id}: {why}", owner.get(b.contract_id, ""))
    return section


# -- canonical JSON and locks ----------------------------------------------------------------


def canonical_targets(run: Run) -> list[str]:
    contract = run.manifest["contracts"].get("canonical_json", {})
    globs = contract.get("globs", ["arch/**/*.json", CASSETTE_MANIFESTS, AGGREGATES])
    return sorted({rel for g in globs for rel in run.p.glob(g)})


def check_canonical(run: Run) -> None:
    if run.on("canonical_json"):
        targets = canonical_targets(run)
        canonical_findings(run.p, targets, "canonical_json")
        run.counts["canonical_json_files"] = len(targets)


def lock_scopes(run: Run, section: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    """scope -> {covered file: sha256 of its canonical form}."""
    lock_paths = set(run.manifest["locks"].values())
    scopes: dict[str, dict[str, str]] = {"manifest": {}, "contracts": {}}
    for rel in canonical_targets(run) + run.p.glob("arch/**/*.json"):
        if rel in lock_paths:
            continue
        loaded = run.p.load(rel)
        if loaded is not None:
            scopes["manifest" if rel.startswith("arch/") else "contracts"][rel] = loaded.digest
    if section is not None:
        key = run.manifest["import_config"] + IMPORT_LOCK_SUFFIX
        scopes["contracts"][key] = locks.digest_value(section)
    return scopes


def read_lock(run: Run, rel: str, scope: str) -> dict[str, str] | None:
    """The locked digests, or None when the lock is absent or unreadable (reported once)."""
    if not (run.p.root / rel).is_file():
        run.add(E_LOCK, rel, "lock file missing; run `rrlab arch check --write-lock`", "locks")
        return None
    value = run.validate(rel, LOCK_SCHEMA, "locks")
    if value is not None and value["scope"] != scope:
        run.add(E_SCHEMA, rel, f"scope {value['scope']!r}, expected {scope!r}", "locks")
        return None
    return None if value is None else dict(value["files"])


def check_locks(
    run: Run, section: dict[str, Any] | None, write: bool
) -> tuple[list[locks.LockChange], bool]:
    """Compare the locks with the covered files; with `write`, rewrite them unless something
    else is broken. Returns the lock diff and whether the locks were written."""
    lock_files = set(run.manifest["locks"].values())
    # anything broken blocks --write-lock, except the lock files themselves (rewritten)
    blocking = any(f.path not in lock_files for f in run.p.findings)
    scopes = lock_scopes(run, section)
    changes: list[locks.LockChange] = []
    unreadable: list[str] = []
    for scope, files in scopes.items():
        rel = run.manifest["locks"][scope]
        old = read_lock(run, rel, scope)
        if old is None:
            unreadable.append(rel)
        changes += locks.diff(rel, old or {}, files)
    if write:
        if blocking:
            return changes, False
        run.p.findings[:] = [f for f in run.p.findings if f.path not in lock_files]
        for scope, files in scopes.items():
            data = locks.dumps_lock(scope, files)
            path = run.p.root / run.manifest["locks"][scope]
            if not path.is_file() or path.read_bytes() != data:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, data)
        return changes, True
    drift = [c for c in changes if c.lock not in unreadable]
    run.p.findings.extend(locks.mismatch_findings(drift))
    return changes, False


def run_check(root: str | Path, *, write_lock: bool = False, imports: bool = True) -> CheckResult:
    """Check every enabled contract under `root`; with `write_lock`, (re)write the locks when
    nothing else is broken. `imports=False` skips import-linter (it alone takes seconds)."""
    run = Run(Path(root).resolve())
    section: dict[str, Any] | None = None
    if load_manifest(run):
        contract_rr.check_rr(run)
        contract_msg.check_profiles(run)
        contract_msg.check_msg(run)
        contract_rr.check_cassettes(run)
        if imports:
            section = check_imports(run)
        check_canonical(run)
        changes, written = check_locks(
            run, section if imports else _config_or_none(run), write_lock
        )
    else:
        changes, written = [], False
    return CheckResult(
        root=run.p.root,
        findings=sorted(set(run.p.findings)),
        enabled=run.enabled,
        counts=run.counts,
        lock_changes=changes,
        locks_written=written,
    )


def _config_or_none(run: Run) -> dict[str, Any] | None:
    try:
        return imp.read_config(run.p.root, run.manifest["import_config"])
    except imp.ImportConfigError:
        return None


def codes(findings: Iterable[Finding]) -> list[str]:
    return sorted({f.code for f in findings})
