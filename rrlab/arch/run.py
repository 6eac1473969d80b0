"""One check over one project root: the loaded files, the enabled contracts, their schema-valid
indexes, the findings so far, and the lookups every cross-reference uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema

from .files import Project
from .findings import E_SCHEMA, Finding

MANIFEST = "arch/manifest.json"
MANIFEST_SCHEMA = "arch/schemas/manifest.schema.json"
LOCK_SCHEMA = "arch/schemas/lock.schema.json"
KNOWN_CONTRACTS = ("msg", "msg_kafka", "msg_amqp", "msg_mqtt", "rr", "canonical_json")
CASSETTE_MANIFESTS = "cassettes/*/cassette.json"
AGGREGATES = "cassettes/*/artifacts/**/aggregate.json"


class Run:
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
