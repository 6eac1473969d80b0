"""`rrlab arch check`: validate arch/ against its schemas, cross-reference it with the code and the
committed cassettes, run the import contracts, check canonical JSON, compare (or write) the locks.

Every check reads files under one root; nothing here opens a socket or imports another layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from rr.cassette.format import FORMAT as CASSETTE_FORMAT
from rr.cassette.record_mode import RecordMode
from rr.policy import PROFILES
from rr.usage import UsageError

from . import imports as imp
from . import locks
from .files import Project, check_canonical
from .findings import (
    E_BUDGET,
    E_IMPORT,
    E_IMPORT_CONFIG,
    E_LOCK,
    E_POLICY_ROLE,
    E_PROTOCOL,
    E_RR_DRIFT,
    E_SCHEMA,
    E_TOPIC,
    E_UNKNOWN_BUDGET,
    E_UNKNOWN_POLICY,
    E_UNKNOWN_REF,
    E_UPSTREAM,
    E_WORKER_DRIFT,
    Finding,
)
from .worker_facts import WorkerFactsError, read_worker_facts

MANIFEST = "arch/manifest.json"
MANIFEST_SCHEMA = "arch/schemas/manifest.schema.json"
LOCK_SCHEMA = "arch/schemas/lock.schema.json"
KNOWN_CONTRACTS = ("msg", "msg_kafka", "msg_amqp", "msg_mqtt", "rr", "canonical_json")
CASSETTE_MANIFESTS = "cassettes/*/cassette.json"
AGGREGATES = "cassettes/*/artifacts/**/aggregate.json"
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


class _Run:
    """One check over one root: the loaded project, the valid indexes, the findings so far."""

    def __init__(self, root: Path) -> None:
        self.p = Project(root)
        self.enabled: dict[str, bool] = {}
        self.indexes: dict[str, Any] = {}  # contract -> value of its (schema-valid) index
        self.manifest: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.validators: dict[str, jsonschema.Draft202012Validator] = {}

    def add(self, code: str, path: str, message: str, contract: str = "") -> None:
        self.p.findings.append(Finding(code, path, message, contract))

    def on(self, contract: str) -> bool:
        return self.enabled.get(contract, False)

    # -- schemas ----------------------------------------------------------------------------------

    def validate(self, rel: str, schema_rel: str, contract: str) -> Any | None:
        """The value of `rel` if it is valid against `schema_rel`, else None (findings added)."""
        doc, schema = self.p.load(rel, contract), self.p.load(schema_rel, contract)
        if doc is None or schema is None:
            return None
        validator = self.validators.get(schema_rel)
        if validator is None:  # checked once per schema: the meta-schema check is the slow part
            try:
                jsonschema.Draft202012Validator.check_schema(schema.value)
            except jsonschema.SchemaError as exc:
                self.add(E_SCHEMA, schema_rel, f"not a valid JSON Schema: {exc.message}", contract)
                return None
            validator = self.validators[schema_rel] = jsonschema.Draft202012Validator(schema.value)
        errors = sorted(validator.iter_errors(doc.value), key=lambda e: list(map(str, e.path)))
        for err in errors[:10]:
            where = "/".join(str(part) for part in err.absolute_path) or "(root)"
            self.add(E_SCHEMA, rel, f"{where}: {err.message} (schema {schema_rel})", contract)
        return None if errors else doc.value

    def load_manifest(self) -> bool:
        if not (self.p.root / MANIFEST).is_file():
            raise UsageError(f"{self.p.root}: no {MANIFEST} (is this the project root? --root DIR)")
        manifest = self.validate(MANIFEST, MANIFEST_SCHEMA, "")
        if manifest is None:
            return False
        self.manifest = manifest
        for name, contract in manifest["contracts"].items():
            if name not in KNOWN_CONTRACTS:
                self.add(
                    E_UNKNOWN_REF,
                    MANIFEST,
                    f"unknown contract {name!r}; known: {', '.join(KNOWN_CONTRACTS)}",
                    name,
                )
                continue
            self.enabled[name] = bool(contract["enabled"])
        for name in KNOWN_CONTRACTS:
            self.enabled.setdefault(name, False)
        for name, contract in manifest["contracts"].items():
            if not self.on(name):
                continue
            for rel, schema_rel in contract["indexes"].items():
                value = self.validate(rel, schema_rel, name)
                if value is not None:
                    self.indexes[name] = value
        return True

    # -- rr: the index against rr.policy / rr.cassette ------------------------------------------

    def check_rr(self) -> None:
        rr = self.indexes.get("rr")
        if rr is None:
            return
        rel = self.contract_index("rr")
        if rr["cassette"]["format"] != CASSETTE_FORMAT:
            self.add(
                E_RR_DRIFT,
                rel,
                f"cassette format {rr['cassette']['format']!r}, but "
                f"rr.cassette writes {CASSETTE_FORMAT!r}",
                "rr",
            )
        modes = sorted(m.value for m in RecordMode)
        if sorted(rr["record_modes"]) != modes:
            self.add(
                E_RR_DRIFT,
                rel,
                f"record_modes {sorted(rr['record_modes'])} differ from "
                f"rr.cassette.RecordMode {modes}",
                "rr",
            )
        if rr["default_match_mode"] not in rr["match_modes"]:
            self.add(
                E_UNKNOWN_REF,
                rel,
                f"default_match_mode {rr['default_match_mode']!r} is not one of match_modes",
                "rr",
            )
        budgets, policies = rr["budgets"], rr["policies"]
        for name, pol in sorted(policies.items()):
            if pol["budget"] not in budgets:
                self.add(
                    E_UNKNOWN_BUDGET,
                    rel,
                    f"policy {name!r} names unknown budget "
                    f"{pol['budget']!r}; budgets: {', '.join(sorted(budgets))}",
                    "rr",
                )
            if (pol["role"] == "record") != (pol["network"] == "proxy"):
                self.add(
                    E_POLICY_ROLE,
                    rel,
                    f"policy {name!r}: role {pol['role']} with network {pol['network']}",
                    "rr",
                )
            code_policy = PROFILES.get(name)
            if code_policy is None:
                self.add(
                    E_UNKNOWN_POLICY,
                    rel,
                    f"policy {name!r} does not exist in rr.policy "
                    f"(profiles: {', '.join(PROFILES)})",
                    "rr",
                )
                continue
            expected = {
                "allow_tmp": code_policy.allow_tmp,
                "network": code_policy.network,
                "strict": code_policy.strict,
                "upstream_allow": list(code_policy.upstream_allow),
                "write_roots": [str(r) for r in code_policy.write_roots],
            }
            for key, want in expected.items():
                if pol[key] != want:
                    self.add(
                        E_RR_DRIFT,
                        rel,
                        f"policy {name!r} {key} is {pol[key]!r} here but {want!r} in rr.policy",
                        "rr",
                    )
            declared = budgets.get(pol["budget"])
            if declared is not None and declared != code_policy.budgets.to_dict():
                self.add(
                    E_RR_DRIFT,
                    rel,
                    f"policy {name!r} budget {pol['budget']!r} is "
                    f"{declared} here but {code_policy.budgets.to_dict()} in rr.policy",
                    "rr",
                )
        for name in PROFILES:
            if name not in policies:
                self.add(E_RR_DRIFT, rel, f"rr.policy profile {name!r} is not declared", "rr")

    def contract_index(self, contract: str) -> str:
        return next(iter(self.manifest["contracts"][contract]["indexes"]), MANIFEST)

    def policy(self, name: str) -> dict[str, Any] | None:
        rr = self.indexes.get("rr")
        return None if rr is None else rr["policies"].get(name)

    def budget(self, name: str) -> dict[str, int] | None:
        rr = self.indexes.get("rr")
        return None if rr is None else rr["budgets"].get(name)

    def fits(self, what: dict[str, int], limit: dict[str, int]) -> list[str]:
        return [
            f"{k} {v} > {limit[k]}" for k, v in sorted(what.items()) if k in limit and v > limit[k]
        ]

    # -- msg_*: connection profiles ------------------------------------------------------------

    def check_profiles(self) -> None:
        if "rr" not in self.indexes:
            return
        for proto in ("kafka", "amqp", "mqtt"):
            cname = f"msg_{proto}"
            prof = self.indexes.get(cname)
            if prof is None:
                continue
            rel = self.contract_index(cname)
            if prof["protocol"] != proto or prof["contract"] != cname:
                self.add(
                    E_UNKNOWN_REF,
                    rel,
                    f"profile of {prof['protocol']!r} for contract "
                    f"{prof['contract']!r}, but it is listed under {cname!r}",
                    cname,
                )
            for slot, role in (("record", "record"), ("replay", "replay"), ("ci", "replay")):
                ref = prof[slot]
                pol, bud = self.policy(ref["policy"]), self.budget(ref["budget"])
                if pol is None:
                    self.add(
                        E_UNKNOWN_POLICY,
                        rel,
                        f"{slot}.policy {ref['policy']!r} is not a policy of arch/rr/index.json",
                        cname,
                    )
                elif pol["role"] != role:
                    self.add(
                        E_POLICY_ROLE,
                        rel,
                        f"{slot}.policy {ref['policy']!r} is a "
                        f"{pol['role']} policy, {slot} needs a {role} one",
                        cname,
                    )
                if bud is None:
                    self.add(
                        E_UNKNOWN_BUDGET,
                        rel,
                        f"{slot}.budget {ref['budget']!r} is not a budget of arch/rr/index.json",
                        cname,
                    )
                elif pol is not None and (cap := self.budget(pol["budget"])) is not None:
                    for over in self.fits(bud, cap):
                        self.add(
                            E_BUDGET,
                            rel,
                            f"{slot}.budget {ref['budget']!r} exceeds policy "
                            f"{ref['policy']!r}: {over}",
                            cname,
                        )
                if slot == "record" and bud is not None:
                    limit = {"max_frame_bytes": prof["limits"]["max_frame_bytes"]}
                    for over in self.fits(limit, bud):
                        self.add(
                            E_BUDGET, rel, f"limits exceed budget {ref['budget']!r}: {over}", cname
                        )
                if (
                    slot == "record"
                    and pol is not None
                    and prof["broker"] not in pol["upstream_allow"]
                ):
                    self.add(
                        E_UPSTREAM,
                        rel,
                        f"broker {prof['broker']} is not an allowed upstream of {ref['policy']!r}",
                        cname,
                    )

    # -- msg: the worker's destinations ------------------------------------------------------

    def check_msg(self) -> None:
        idx = self.indexes.get("msg")
        if idx is None:
            return
        rel, worker = self.contract_index("msg"), idx["worker"]
        try:
            facts = read_worker_facts(self.p.root, worker["module"], worker["topic_option"])
        except WorkerFactsError as exc:
            self.add(E_WORKER_DRIFT, f"{worker['module']}/", str(exc), "msg")
            return
        if sorted(worker["drivers"]) != sorted(facts.drivers):
            self.add(
                E_WORKER_DRIFT,
                rel,
                f"worker.drivers {sorted(worker['drivers'])} but the "
                f"worker has {sorted(facts.drivers)}",
                "msg",
            )
        brands = idx["brands"]
        if brands["value"]["name"] != facts.envelope_schema:
            self.add(
                E_WORKER_DRIFT,
                rel,
                f"value brand {brands['value']['name']!r} but the "
                f"worker's envelope schema is {facts.envelope_schema!r}",
                "msg",
            )
        if list(brands["key"]["values"]) != list(facts.keys):
            self.add(
                E_WORKER_DRIFT,
                rel,
                f"key brand values {brands['key']['values']} but the "
                f"worker's keys are {list(facts.keys)}",
                "msg",
            )
        for dest in idx["destinations"]:
            for kind, brand in (("key_brand", "key"), ("value_brand", "value")):
                if dest[kind] != brands[brand]["name"]:
                    self.add(
                        E_UNKNOWN_REF,
                        rel,
                        f"destination {dest['name']!r}: {kind} "
                        f"{dest[kind]!r} is not a declared brand",
                        "msg",
                    )
            for proto in sorted(dest["kinds"]):
                if not self.on(f"msg_{proto}"):
                    self.add(
                        E_PROTOCOL,
                        rel,
                        f"destination {dest['name']!r} is used over {proto} "
                        f"but contract msg_{proto} is not enabled",
                        "msg",
                    )
                    continue
                prof = self.indexes.get(f"msg_{proto}")
                cap = None if prof is None else prof["limits"]["max_value_bytes"]
                if cap is not None and dest["max_value_bytes"] > cap:
                    self.add(
                        E_BUDGET,
                        rel,
                        f"destination {dest['name']!r}: max_value_bytes "
                        f"{dest['max_value_bytes']} > {proto} profile limit {cap}",
                        "msg",
                    )
        configured = worker["destination"].replace("{topic}", facts.topic_default)
        main = f"{worker['module']}/__main__.py"
        for driver in facts.drivers:
            if _declared(idx, driver, configured, template=True) is None:
                self.add(
                    E_TOPIC,
                    main,
                    f"the worker's {driver} destination {configured!r} "
                    f"({worker['topic_option']} default {facts.topic_default!r}) is not "
                    f"declared in {rel}",
                    "msg",
                )
        for agg_rel in self.p.glob(AGGREGATES):
            loaded = self.p.load(agg_rel, "msg")
            value = None if loaded is None else loaded.value
            if not isinstance(value, dict) or value.get("schema") != worker["aggregate"]:
                continue  # another program's output
            if self.validate(agg_rel, worker["aggregate_schema"], "msg") is None:
                continue
            driver, destination = str(value.get("driver")), str(value.get("destination"))
            if _declared(idx, driver, destination, template=False) is None:
                self.add(
                    E_TOPIC,
                    agg_rel,
                    f"recorded {driver} destination {destination!r} is not declared in {rel}",
                    "msg",
                )
            self.counts["worker_aggregates"] = self.counts.get("worker_aggregates", 0) + 1

    # -- rr: committed cassettes ---------------------------------------------------------------

    def check_cassettes(self) -> None:
        rr = self.indexes.get("rr")
        rels = self.p.glob(CASSETTE_MANIFESTS)
        self.counts["cassettes"] = len(rels)
        if rr is None:
            return
        for rel in rels:
            m = self.validate(rel, rr["cassette"]["manifest_schema"], "rr")
            if m is None:
                continue
            if m.get("format") != rr["cassette"]["format"]:
                self.add(
                    E_RR_DRIFT,
                    rel,
                    f"format {m.get('format')!r}, the index declares {rr['cassette']['format']!r}",
                    "rr",
                )
            for proto in m.get("protocols", []):
                if not self.on(f"msg_{proto}"):
                    self.add(
                        E_PROTOCOL,
                        rel,
                        f"records {proto} but contract msg_{proto} is not enabled",
                        "rr",
                    )
            name = (m.get("meta") or {}).get("profile")
            pol = self.policy(name) if isinstance(name, str) else None
            if pol is None:
                self.add(
                    E_UNKNOWN_POLICY,
                    rel,
                    f"recorded under policy {name!r}, not a policy of arch/rr/index.json",
                    "rr",
                )
                continue
            if pol["role"] != "record":
                self.add(
                    E_POLICY_ROLE, rel, f"recorded under {name!r}, a {pol['role']} policy", "rr"
                )
            budgets = m.get("budgets") or {}
            cap = self.budget(pol["budget"]) or {}
            for over in self.fits(budgets, cap):
                self.add(E_BUDGET, rel, f"budgets exceed policy {name!r}: {over}", "rr")
            used = {
                "max_frames": int(m.get("frame_count", 0)),
                "max_cassette_bytes": int((m.get("frames_file") or {}).get("bytes", 0)),
            }
            for over in self.fits(used, budgets):
                self.add(E_BUDGET, rel, f"recording exceeds its own budgets: {over}", "rr")
            for route in m.get("routes", []):
                if route.get("upstream") not in pol["upstream_allow"]:
                    self.add(
                        E_UPSTREAM,
                        rel,
                        f"route to {route.get('upstream')} is not an allowed upstream of {name!r}",
                        "rr",
                    )

    # -- import contracts ------------------------------------------------------------------------

    def check_imports(self) -> dict[str, Any] | None:
        """Run the claimed import contracts; return the config table (for the lock) if readable."""
        config = self.manifest["import_config"]
        try:
            section = imp.read_config(self.p.root, config)
        except imp.ImportConfigError as exc:
            self.add(E_IMPORT_CONFIG, config, str(exc), "")
            return None
        configured = imp.contract_ids(section)
        owner: dict[str, str] = {}
        for name, contract in self.manifest["contracts"].items():
            for cid in contract["import_contracts"]:
                owner[cid] = name
                if cid not in configured:
                    self.add(
                        E_IMPORT_CONFIG,
                        config,
                        f"import contract {cid!r} named by the "
                        "manifest is not configured in [tool.importlinter]",
                        name,
                    )
        for cid in configured:
            if cid not in owner:
                what = f"import contract {cid!r}" if cid else "an import contract without an id"
                self.add(
                    E_IMPORT_CONFIG,
                    config,
                    f"{what} is not claimed by any contract of {MANIFEST}",
                    "",
                )
        run_ids = [cid for cid in configured if cid in owner and self.on(owner[cid])]
        try:
            broken = imp.run_contracts(self.p.root, config, run_ids)
        except imp.ImportConfigError as exc:
            self.add(E_IMPORT_CONFIG, config, str(exc), "")
            return section
        self.counts["import_contracts"] = len(run_ids)
        for b in broken:
            self.add(
                E_IMPORT,
                b.first_importer_path(),
                f"{b.contract_id}: {b.describe()}",
                owner.get(b.contract_id, ""),
            )
        return section

    # -- canonical JSON and locks ----------------------------------------------------------------

    def canonical_targets(self) -> list[str]:
        contract = self.manifest["contracts"].get("canonical_json", {})
        globs = contract.get("globs", ["arch/**/*.json", CASSETTE_MANIFESTS, AGGREGATES])
        return sorted({rel for g in globs for rel in self.p.glob(g)})

    def check_canonical(self) -> None:
        if self.on("canonical_json"):
            targets = self.canonical_targets()
            check_canonical(self.p, targets, "canonical_json")
            self.counts["canonical_json_files"] = len(targets)

    def lock_scopes(self, section: dict[str, Any] | None) -> dict[str, dict[str, str]]:
        """scope -> {covered file: sha256 of its canonical form}."""
        lock_paths = set(self.manifest["locks"].values())
        scopes: dict[str, dict[str, str]] = {"manifest": {}, "contracts": {}}
        for rel in self.canonical_targets() + self.p.glob("arch/**/*.json"):
            if rel in lock_paths:
                continue
            loaded = self.p.load(rel)
            if loaded is not None:
                scopes["manifest" if rel.startswith("arch/") else "contracts"][rel] = loaded.digest
        if section is not None:
            key = self.manifest["import_config"] + IMPORT_LOCK_SUFFIX
            scopes["contracts"][key] = locks.digest_value(section)
        return scopes

    def read_lock(self, rel: str, scope: str) -> dict[str, str] | None:
        """The locked digests, or None when the lock is absent or unreadable (reported once)."""
        if not (self.p.root / rel).is_file():
            self.add(E_LOCK, rel, "lock file missing; run `rrlab arch check --write-lock`", "locks")
            return None
        value = self.validate(rel, LOCK_SCHEMA, "locks")
        if value is not None and value["scope"] != scope:
            self.add(E_SCHEMA, rel, f"scope {value['scope']!r}, expected {scope!r}", "locks")
            return None
        return None if value is None else dict(value["files"])

    def check_locks(self, section: dict[str, Any] | None, write: bool) -> tuple[list[Any], bool]:
        lock_files = set(self.manifest["locks"].values())
        # anything broken blocks --write-lock, except the lock files themselves (rewritten)
        blocking = any(f.path not in lock_files for f in self.p.findings)
        scopes = self.lock_scopes(section)
        changes: list[locks.LockChange] = []
        unreadable: list[str] = []
        for scope, files in scopes.items():
            rel = self.manifest["locks"][scope]
            old = self.read_lock(rel, scope)
            if old is None:
                unreadable.append(rel)
            changes += locks.diff(rel, old or {}, files)
        if write:
            if blocking:
                return changes, False
            self.p.findings[:] = [f for f in self.p.findings if f.path not in lock_files]
            for scope, files in scopes.items():
                data = locks.dumps_lock(scope, files)
                path = self.p.root / self.manifest["locks"][scope]
                if not path.is_file() or path.read_bytes() != data:
                    locks.write_atomic(path, data)
            return changes, True
        drift = [c for c in changes if c.lock not in unreadable]
        self.p.findings.extend(locks.mismatch_findings(drift))
        return changes, False


def _pattern(template: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in template.split("{seed}")]
    return re.compile("-?[0-9]+".join(parts))


def _declared(idx: dict[str, Any], driver: str, name: str, *, template: bool) -> Any | None:
    """The declared destination `name` (a template itself, or a concrete one) for `driver`."""
    for dest in idx["destinations"]:
        if driver not in dest["kinds"]:
            continue
        if dest["name"] == name if template else _pattern(dest["name"]).fullmatch(name):
            return dest
    return None


def run_check(root: str | Path, *, write_lock: bool = False, imports: bool = True) -> CheckResult:
    """Check every enabled contract under `root`; with `write_lock`, (re)write the locks when
    nothing else is broken. `imports=False` skips import-linter (it alone takes seconds)."""
    run = _Run(Path(root).resolve())
    section: dict[str, Any] | None = None
    if run.load_manifest():
        run.check_rr()
        run.check_profiles()
        run.check_msg()
        run.check_cassettes()
        if imports:
            section = run.check_imports()
        run.check_canonical()
        changes, written = run.check_locks(section if imports else _config_or_none(run), write_lock)
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


def _config_or_none(run: _Run) -> dict[str, Any] | None:
    try:
        return imp.read_config(run.p.root, run.manifest["import_config"])
    except imp.ImportConfigError:
        return None


def codes(findings: Iterable[Finding]) -> list[str]:
    return sorted({f.code for f in findings})
