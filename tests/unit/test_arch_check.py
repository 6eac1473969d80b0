"""`rrlab arch check` on this checkout and on temporary copies where one contract is broken on
purpose: each case must fail with its own error code and name the file at fault."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rrlab.arch.check import CheckResult, run_check
from rrlab.cli import main
from rrlab.rr.canonical import dumps

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("rr", "rrlab", "proxy", "replayer", "brokers", "worker")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "frames.jsonl")


def _copy(root: Path, packages: tuple[str, ...]) -> Path:
    """What `arch check` reads, copied: arch/, the cassette manifests and artifacts (no frames),
    pyproject.toml and `packages`."""
    root.mkdir()
    shutil.copytree(REPO / "arch", root / "arch", ignore=IGNORE)
    for cassette in sorted((REPO / "cassettes").glob("*/cassette.json")):
        shutil.copytree(cassette.parent, root / "cassettes" / cassette.parent.name, ignore=IGNORE)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    for package in packages:
        shutil.copytree(REPO / package, root / package, ignore=IGNORE, symlinks=True)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy import-linter can analyse (every root package)."""
    return _copy(tmp_path / "repo", PACKAGES)


@pytest.fixture
def data_tree(tmp_path: Path) -> Path:
    """A copy for checks without import contracts: the data and the worker's source."""
    return _copy(tmp_path / "repo", ("worker",))


def edit_json(root: Path, rel: str, change: Callable[[Any], None]) -> None:
    """Change a JSON file and keep it canonical (so only the intended contract breaks)."""
    path = root / rel
    value = json.loads(path.read_bytes())
    change(value)
    path.write_bytes(dumps(value))


def codes_at(result: CheckResult) -> set[tuple[str, str]]:
    return {(f.code, f.path) for f in result.findings}


def only_codes(result: CheckResult) -> set[str]:
    return {f.code for f in result.findings}


def test_main_checkout_holds_every_contract() -> None:
    result = run_check(REPO)
    assert result.findings == [], "\n".join(f.line() for f in result.findings)
    assert all(result.enabled[name] for name in ("msg", "msg_kafka", "rr", "canonical_json"))
    assert result.counts["import_contracts"] >= 8
    assert result.counts["cassettes"] == len(list((REPO / "cassettes").glob("*/cassette.json")))


#: a module added to the copy -> (its import, the import contract it breaks, the arch contract)
BREAKERS = {
    "worker/sneaky.py": ("from rrlab.rr.canonical import dumps", "worker-imports-nothing-of-ours",
                         "msg"),
    "replayer/shortcut.py": ("import kafka", "replayer-no-kafka-client", "msg_kafka"),
    "replayer/bunny.py": ("import pika", "replayer-no-amqp-client", "msg_amqp"),
    "replayer/mosquito.py": ("from amqtt.client import MQTTClient", "replayer-no-mqtt-client",
                             "msg_mqtt"),
    "replayer/recorder.py": ("import rrlab.proxy.forward", "replayer-independent-of-proxy", "rr"),
    "rr/protocols/slow.py": ("from twisted.internet import defer", "rr-no-twisted", "rr"),
    "rr/cassette/timer.py": ("from twisted.internet import task", "rr-no-twisted", "rr"),
    "rr/upward.py": ("import rrlab.replayer.rules", "rr-imports-no-io-layer", "rr"),
    "rr/cassette/command.py": ("import rrlab.cli", "rr-imports-no-io-layer", "rr"),
    "rrlab/arch/shortcut.py": ("import rrlab.proxy.forward", "rrlab-shared-imports-no-io-layer",
                               "rr"),
}  # fmt: skip


def test_broken_import_contracts_are_named(tree: Path) -> None:
    for rel, (line, _, _) in BREAKERS.items():
        (tree / rel).write_text(line + "\n")
    result = run_check(tree)
    by_path = {f.path: f for f in result.findings}
    assert set(by_path) == set(BREAKERS), [f.line() for f in result.findings]
    for rel, (_, contract_id, arch_contract) in BREAKERS.items():
        finding = by_path[rel]
        assert finding.code == "E_ARCH_IMPORT_CONTRACT"
        assert finding.contract == arch_contract
        assert finding.message.startswith(contract_id + ":"), finding.message


def test_import_contracts_must_be_claimed_and_configured(tree: Path) -> None:
    text = (tree / "pyproject.toml").read_text()
    text = text.replace('id = "replayer-no-amqp-client"', 'id = "renamed-amqp-contract"')
    (tree / "pyproject.toml").write_text(text)
    result = run_check(tree)
    messages = [f.message for f in result.findings if f.code == "E_ARCH_IMPORT_CONFIG"]
    assert any("'replayer-no-amqp-client' named by the manifest" in m for m in messages)
    assert any("'renamed-amqp-contract' is not claimed" in m for m in messages)


def test_non_canonical_json_is_named(data_tree: Path) -> None:
    rel = "cassettes/worker-kafka-tansu/cassette.json"
    value = json.loads((data_tree / rel).read_bytes())
    (data_tree / rel).write_text(json.dumps(value, indent=2))  # same value, other bytes
    arch_rel = "arch/msg/index.json"
    (data_tree / arch_rel).write_bytes((data_tree / arch_rel).read_bytes() + b"\n")
    result = run_check(data_tree, imports=False)
    assert codes_at(result) == {
        ("E_ARCH_NONCANONICAL_JSON", rel),
        ("E_ARCH_NONCANONICAL_JSON", arch_rel),
    }  # the locks hash the canonical form: same value, no lock drift


def test_unknown_policy_in_a_profile_and_in_a_cassette(data_tree: Path) -> None:
    edit_json(
        data_tree, "arch/msg/kafka.profile.json", lambda v: v["record"].update(policy="os_rec")
    )
    cassette = "cassettes/worker-amqp-rabbitmq/cassette.json"
    edit_json(data_tree, cassette, lambda v: v["meta"].update(profile="somewhere_else"))
    result = run_check(data_tree, imports=False)
    assert ("E_ARCH_UNKNOWN_POLICY", "arch/msg/kafka.profile.json") in codes_at(result)
    assert ("E_ARCH_UNKNOWN_POLICY", cassette) in codes_at(result)


def test_unknown_budget_named_by_a_profile(data_tree: Path) -> None:
    edit_json(data_tree, "arch/msg/mqtt.profile.json", lambda v: v["ci"].update(budget="huge"))
    result = run_check(data_tree, imports=False)
    assert ("E_ARCH_UNKNOWN_BUDGET", "arch/msg/mqtt.profile.json") in codes_at(result)


def test_rr_index_drifting_from_rr_policy_fails(data_tree: Path) -> None:
    def drift(v: dict[str, Any]) -> None:
        v["policies"]["os_record"]["upstream_allow"].append("127.0.0.1:9093")
        del v["policies"]["ci_replay"]

    edit_json(data_tree, "arch/rr/index.json", drift)
    result = run_check(data_tree, imports=False)
    drifts = [f.message for f in result.findings if f.code == "E_ARCH_RR_DRIFT"]
    assert any("upstream_allow" in m and "os_record" in m for m in drifts), drifts
    assert any("'ci_replay' is not declared" in m for m in drifts), drifts


def test_compaction_settings_in_the_rr_index_must_be_the_code_s(data_tree: Path) -> None:
    def drift(v: dict[str, Any]) -> None:
        v["cassette"]["compact_over_bytes"] = 2048

    edit_json(data_tree, "arch/rr/index.json", drift)
    result = run_check(data_tree, imports=False)
    drifts = [f.message for f in result.findings if f.code == "E_ARCH_RR_DRIFT"]
    assert any("compact_over_bytes 2048" in m for m in drifts), drifts


def test_a_committed_cassette_may_be_compacted_but_no_other_format(data_tree: Path) -> None:
    compacted = "cassettes/worker-kafka-tansu/cassette.json"
    other = "cassettes/kafka-batching-tansu/cassette.json"
    edit_json(data_tree, compacted, lambda v: v.update(format="rrlab.cassette/4"))
    edit_json(data_tree, other, lambda v: v.update(format="rrlab.cassette/2"))
    result = run_check(data_tree, imports=False)
    drifted = {f.path for f in result.findings if f.code == "E_ARCH_RR_DRIFT"}
    assert other in drifted and compacted not in drifted


def test_worker_topic_not_declared(data_tree: Path) -> None:
    main = data_tree / "worker" / "__main__.py"
    main.write_text(main.read_text().replace('default="rrlab.worker"', 'default="orders"'))
    edit_json(
        data_tree,
        "cassettes/worker-mqtt-amqtt/artifacts/out/worker-mqtt-amqtt/aggregate.json",
        lambda v: v.update(destination="orders.1"),
    )
    result = run_check(data_tree, imports=False)
    topic = {f.path for f in result.findings if f.code == "E_ARCH_TOPIC_UNDECLARED"}
    assert topic == {
        "worker/__main__.py",
        "cassettes/worker-mqtt-amqtt/artifacts/out/worker-mqtt-amqtt/aggregate.json",
    }
    assert any("'orders.{seed}'" in f.message for f in result.findings)


def test_value_brand_must_be_the_worker_envelope_schema(data_tree: Path) -> None:
    edit_json(data_tree, "arch/msg/index.json", lambda v: v["brands"]["value"].update(name="x/1"))
    result = run_check(data_tree, imports=False)
    assert ("E_ARCH_WORKER_DRIFT", "arch/msg/index.json") in codes_at(result)


def test_index_not_matching_its_schema(data_tree: Path) -> None:
    edit_json(data_tree, "arch/msg/index.json", lambda v: v.pop("destinations"))
    result = run_check(data_tree, imports=False)
    assert ("E_ARCH_SCHEMA", "arch/msg/index.json") in codes_at(result)
    assert any("'destinations' is a required property" in f.message for f in result.findings)


def test_cassette_protocol_must_be_an_enabled_contract(data_tree: Path) -> None:
    edit_json(
        data_tree, "arch/manifest.json", lambda v: v["contracts"]["msg_mqtt"].update(enabled=False)
    )
    result = run_check(data_tree, imports=False)
    disabled = {f.path for f in result.findings if f.code == "E_ARCH_PROTOCOL_DISABLED"}
    assert "cassettes/worker-mqtt-mosquitto/cassette.json" in disabled
    assert "cassettes/worker-kafka-tansu/cassette.json" not in disabled


def test_cassette_budgets_must_fit_its_policy(data_tree: Path) -> None:
    rel = "cassettes/worker-kafka-tansu/cassette.json"
    edit_json(data_tree, rel, lambda v: v["budgets"].update(max_frames=10**9))
    small = "cassettes/kafka-batching-tansu/cassette.json"
    edit_json(data_tree, small, lambda v: v["budgets"].update(max_frames=3))  # it holds 28 frames
    result = run_check(data_tree, imports=False)
    budget = {f.path for f in result.findings if f.code == "E_ARCH_BUDGET_EXCEEDED"}
    assert budget == {rel, small}


def test_import_config_missing(tree: Path) -> None:
    text = (tree / "pyproject.toml").read_text()
    (tree / "pyproject.toml").write_text(text.replace("[tool.importlinter", "[tool.unused"))
    result = run_check(tree)
    assert ("E_ARCH_IMPORT_CONFIG", "pyproject.toml") in codes_at(result)


def test_edited_index_needs_a_new_lock_and_the_lock_diff_is_that_file(data_tree: Path) -> None:
    rel = "arch/msg/index.json"
    edit_json(data_tree, rel, lambda v: v["destinations"][0].update(max_value_bytes=512))
    result = run_check(data_tree, imports=False)
    assert codes_at(result) == {("E_ARCH_LOCK_MISMATCH", rel)}

    before = {p: json.loads((data_tree / p).read_bytes()) for p in LOCKS}
    written = run_check(data_tree, imports=False, write_lock=True)
    assert written.ok and written.locks_written
    assert [(c.lock, c.path, c.kind) for c in written.lock_changes] == [
        ("arch/manifest.lock.json", rel, "changed")
    ]
    after = {p: json.loads((data_tree / p).read_bytes()) for p in LOCKS}
    assert after["arch/contracts.lock.json"] == before["arch/contracts.lock.json"]
    old, new = before["arch/manifest.lock.json"], after["arch/manifest.lock.json"]
    assert {k for k in old["files"] if old["files"][k] != new["files"][k]} == {rel}
    assert run_check(data_tree, imports=False).ok


LOCKS = ("arch/manifest.lock.json", "arch/contracts.lock.json")


def test_write_lock_refused_while_a_contract_is_broken(data_tree: Path) -> None:
    edit_json(data_tree, "arch/msg/kafka.profile.json", lambda v: v.update(broker="127.0.0.1:9999"))
    lock = (data_tree / "arch/manifest.lock.json").read_bytes()
    result = run_check(data_tree, imports=False, write_lock=True)
    assert not result.locks_written
    assert ("E_ARCH_UPSTREAM_NOT_ALLOWED", "arch/msg/kafka.profile.json") in codes_at(result)
    assert (data_tree / "arch/manifest.lock.json").read_bytes() == lock


def test_removed_lock_file_is_reported(data_tree: Path) -> None:
    (data_tree / "arch/contracts.lock.json").unlink()
    result = run_check(data_tree, imports=False)
    assert codes_at(result) == {("E_ARCH_LOCK_MISMATCH", "arch/contracts.lock.json")}


def test_cli_json_report_and_exit_codes(tree: Path, capsysbinary: pytest.CaptureFixture) -> None:
    assert main(["arch", "check", "--json", "--root", str(tree)]) == 0
    out = capsysbinary.readouterr().out
    report = json.loads(out)
    assert out == dumps(report) + b"\n" and report["ok"] is True and report["findings"] == []
    edit_json(tree, "arch/rr/index.json", lambda v: v.update(default_match_mode="lookup"))
    assert main(["arch", "check", "--root", str(tree)]) == 1
    text = capsysbinary.readouterr().out.decode()
    assert "E_ARCH_LOCK_MISMATCH arch/rr/index.json" in text and "FAILED: 1 finding" in text
    assert main(["arch", "check", "--root", str(tree / "nowhere")]) == 2
    assert b"not a directory" in capsysbinary.readouterr().err


def test_write_lock_repairs_a_damaged_lock_file(data_tree: Path) -> None:
    lock = data_tree / "arch/contracts.lock.json"
    good = lock.read_bytes()
    lock.write_text('{"files": {}, "format": "something else"}\n')
    result = run_check(data_tree, imports=False)
    assert {f.path for f in result.findings} == {"arch/contracts.lock.json"}
    assert run_check(data_tree, imports=False, write_lock=True).locks_written
    assert lock.read_bytes() == good


def test_cassette_manifest_and_worker_aggregate_have_schemas(data_tree: Path) -> None:
    cassette = "cassettes/worker-mqtt-amqtt/cassette.json"
    edit_json(data_tree, cassette, lambda v: v.update(finalized=False))  # a crashed recording
    aggregate = "cassettes/worker-amqp-rabbitmq/artifacts/out/worker-amqp-rabbitmq/aggregate.json"
    edit_json(data_tree, aggregate, lambda v: v["digest"].update(algorithm="md5"))
    result = run_check(data_tree, imports=False)
    assert ("E_ARCH_SCHEMA", cassette) in codes_at(result)
    assert ("E_ARCH_SCHEMA", aggregate) in codes_at(result)
    assert any("finalized: True was expected" in f.message for f in result.findings)


def test_a_schema_that_is_not_a_json_schema(data_tree: Path) -> None:
    schema = "arch/schemas/msg-profile.schema.json"
    edit_json(data_tree, schema, lambda v: v.update(type=5))
    result = run_check(data_tree, imports=False)
    assert ("E_ARCH_SCHEMA", schema) in codes_at(result)
    assert any("not a valid JSON Schema" in f.message for f in result.findings)
