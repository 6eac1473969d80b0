"""The worker's configuration, read from its source (never imported: the worker is the
"unmodified" application and the check may run on a copy of the repository).

What is read: the `--topic` default (the base of every destination), the driver names, the
envelope schema (value brand) and the envelope keys (key brand).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


class WorkerFactsError(Exception):
    """The worker's source no longer says what the index relies on (one line, names the file)."""


@dataclass(frozen=True, slots=True)
class WorkerFacts:
    topic_default: str
    drivers: tuple[str, ...]
    envelope_schema: str
    keys: tuple[str, ...]


def _tree(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError) as exc:
        raise WorkerFactsError(f"cannot read {path.name}: {exc}") from exc


def _constant(tree: ast.Module, name: str, where: str) -> object:
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == name and node.value is not None:
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                break
    raise WorkerFactsError(f"{where}: no literal module constant {name}")


def _option_default(tree: ast.Module, option: str, where: str) -> str:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == option
        ):
            for kw in node.keywords:
                if kw.arg == "default" and isinstance(kw.value, ast.Constant):
                    return str(kw.value.value)
            raise WorkerFactsError(f"{where}: {option} has no literal default")
    raise WorkerFactsError(f"{where}: no {option} option")


def read_worker_facts(root: Path, module: str, topic_option: str) -> WorkerFacts:
    """Facts from `<root>/<module>/{__main__.py, drivers/__init__.py, envelope.py}`."""
    base = root / module
    main, drivers, envelope = (
        base / "__main__.py",
        base / "drivers" / "__init__.py",
        base / "envelope.py",
    )
    topic = _option_default(_tree(main), topic_option, f"{module}/__main__.py")
    names = _constant(_tree(drivers), "DRIVERS", f"{module}/drivers/__init__.py")
    env_tree = _tree(envelope)
    schema = _constant(env_tree, "SCHEMA", f"{module}/envelope.py")
    keys = _constant(env_tree, "KEYS", f"{module}/envelope.py")
    return WorkerFacts(
        topic_default=topic,
        drivers=tuple(str(d) for d in names),  # type: ignore[union-attr]
        envelope_schema=str(schema),
        keys=tuple(str(k) for k in keys),  # type: ignore[union-attr]
    )
