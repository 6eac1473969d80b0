"""Import contracts: import-linter, configured once in `pyproject.toml` ([tool.importlinter],
also run by `make lint`), run here in a subprocess on the project root so a copy of the tree is
analysed as it is, never the installed packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: run in the child: import-linter's own use cases, results as one JSON document on stdout
_RUNNER = r"""
import json, sys
from importlinter import configuration
configuration.configure()
from importlinter.application import use_cases as uc
opts = uc.read_user_options(config_filename=sys.argv[1])
uc._register_contract_types(opts)
report = uc.create_report(opts, tuple(sys.argv[2:]), cache_dir=None)
out = {"invalid": sorted(report.invalid_contract_options), "contracts": []}
for contract, check in report.get_contracts_and_checks():
    chains = []
    for entry in check.metadata.get("invalid_chains", []):
        for chain in entry.get("chains", []):
            chains.append([[link["importer"], link["imported"], list(link["line_numbers"])]
                           for link in chain])
    out["contracts"].append({"id": contract.contract_options.get("id", ""),
                             "name": contract.name, "kept": check.kept, "chains": chains})
sys.stdout.write(json.dumps(out))
"""


class ImportConfigError(Exception):
    """The import-linter configuration is missing or could not be run (one line)."""


Chain = list[tuple[str, str, list[int]]]  # (importer, imported, line numbers) per hop


@dataclass(frozen=True, slots=True)
class BrokenImport:
    """A broken contract with the import chains that break it."""

    contract_id: str
    name: str
    chains: list[Chain] = field(default_factory=list)

    def by_file(self, root: Path) -> dict[str, str]:
        """{source file of an offending importer (relative to root): the chains it starts}."""
        grouped: dict[str, list[str]] = {}
        for chain in self.chains:
            if not chain:
                continue
            hops = " -> ".join([chain[0][0], *(link[1] for link in chain)])
            lines = ",".join(str(n) for n in chain[0][2])
            text = f"{hops} (l.{lines})" if lines else hops
            grouped.setdefault(module_file(root, chain[0][0]), []).append(text)
        if not grouped:
            return {"pyproject.toml": f"{self.name}: broken"}
        return {path: f"{self.name}: " + "; ".join(texts) for path, texts in grouped.items()}


def module_file(root: Path, module: str) -> str:
    """The source file of `module` under root: a package's __init__.py or a module's .py, named
    where it lives in the repository (rrlab/rr/... is a symlink to rr/...)."""
    base = module.replace(".", "/")
    package = f"{base}/__init__.py"
    rel = package if (root / package).is_file() else f"{base}.py"
    real = (root / rel).resolve()
    return (
        real.relative_to(root.resolve()).as_posix() if real.is_relative_to(root.resolve()) else rel
    )


def read_config(root: Path, config: str) -> dict[str, Any]:
    """The [tool.importlinter] table of `config` (a TOML file under root)."""
    try:
        data = tomllib.loads((root / config).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ImportConfigError(f"cannot read {config}: {exc}") from exc
    section = data.get("tool", {}).get("importlinter")
    if not isinstance(section, dict):
        raise ImportConfigError(f"{config} has no [tool.importlinter] section")
    return section


def contract_ids(section: dict[str, Any]) -> list[str]:
    return [str(c.get("id", "")) for c in section.get("contracts", [])]


def run_contracts(root: Path, config: str, ids: list[str]) -> list[BrokenImport]:
    """Check the contracts `ids` on the sources under `root`; the broken ones, in config order."""
    if not ids:
        return []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH", "")])])
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(root / config), *ids],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImportConfigError(f"import-linter could not run: {tail}")
    result = json.loads(proc.stdout)
    if result["invalid"]:
        raise ImportConfigError(f"invalid import contracts: {', '.join(result['invalid'])}")
    return [
        BrokenImport(c["id"], c["name"], [[tuple(link) for link in ch] for ch in c["chains"]])
        for c in result["contracts"]
        if not c["kept"]
    ]
