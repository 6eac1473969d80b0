"""The `rr` contract: arch/rr/index.json equals what rr.policy and rr.cassette define, and every
committed cassette records enabled protocols under a record policy it respects."""

from __future__ import annotations

from rrlab.rr.cassette.format import FORMAT as CASSETTE_FORMAT
from rrlab.rr.cassette.format import FORMAT_V4 as COMPACTED_FORMAT
from rrlab.rr.cassette.record_mode import RecordMode
from rrlab.rr.policy import COMPACT_OVER_BYTES, PROFILES

from .findings import (
    E_BUDGET,
    E_POLICY_ROLE,
    E_PROTOCOL,
    E_RR_DRIFT,
    E_UNKNOWN_BUDGET,
    E_UNKNOWN_POLICY,
    E_UNKNOWN_REF,
    E_UPSTREAM,
)
from .run import CASSETTE_MANIFESTS, Run

# -- rr: the index against rr.policy / rr.cassette ------------------------------------------


def check_rr(run: Run) -> None:
    """The index equals rr.policy.PROFILES (fields and budgets), rr.cassette's format and modes."""
    rr = run.indexes.get("rr")
    if rr is None:
        return
    rel = run.contract_index("rr")
    if rr["cassette"]["format"] != CASSETTE_FORMAT:
        run.add(
            E_RR_DRIFT,
            rel,
            f"cassette format {rr['cassette']['format']!r}, but "
            f"rr.cassette writes {CASSETTE_FORMAT!r}",
            "rr",
        )
    for key, want in (
        ("compacted_format", COMPACTED_FORMAT),
        ("compact_over_bytes", COMPACT_OVER_BYTES),
    ):
        if rr["cassette"].get(key) != want:
            run.add(
                E_RR_DRIFT,
                rel,
                f"cassette {key} {rr['cassette'].get(key)!r}, but rr.cassette says {want!r}",
                "rr",
            )
    modes = sorted(m.value for m in RecordMode)
    if sorted(rr["record_modes"]) != modes:
        run.add(
            E_RR_DRIFT,
            rel,
            f"record_modes {sorted(rr['record_modes'])} differ from rr.cassette.RecordMode {modes}",
            "rr",
        )
    if rr["default_match_mode"] not in rr["match_modes"]:
        run.add(
            E_UNKNOWN_REF,
            rel,
            f"default_match_mode {rr['default_match_mode']!r} is not one of match_modes",
            "rr",
        )
    budgets, policies = rr["budgets"], rr["policies"]
    for name, pol in sorted(policies.items()):
        if pol["budget"] not in budgets:
            run.add(
                E_UNKNOWN_BUDGET,
                rel,
                f"policy {name!r} names unknown budget "
                f"{pol['budget']!r}; budgets: {', '.join(sorted(budgets))}",
                "rr",
            )
        if (pol["role"] == "record") != (pol["network"] == "proxy"):
            run.add(
                E_POLICY_ROLE,
                rel,
                f"policy {name!r}: role {pol['role']} with network {pol['network']}",
                "rr",
            )
        code_policy = PROFILES.get(name)
        if code_policy is None:
            run.add(
                E_UNKNOWN_POLICY,
                rel,
                f"policy {name!r} does not exist in rr.policy (profiles: {', '.join(PROFILES)})",
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
                run.add(
                    E_RR_DRIFT,
                    rel,
                    f"policy {name!r} {key} is {pol[key]!r} here but {want!r} in rr.policy",
                    "rr",
                )
        declared = budgets.get(pol["budget"])
        if declared is not None and declared != code_policy.budgets.to_dict():
            run.add(
                E_RR_DRIFT,
                rel,
                f"policy {name!r} budget {pol['budget']!r} is "
                f"{declared} here but {code_policy.budgets.to_dict()} in rr.policy",
                "rr",
            )
    for name in PROFILES:
        if name not in policies:
            run.add(E_RR_DRIFT, rel, f"rr.policy profile {name!r} is not declared", "rr")


# -- rr: committed cassettes ---------------------------------------------------------------


def check_cassettes(run: Run) -> None:
    """Each committed cassette: enabled protocols, a record policy, its upstreams and budgets."""
    rr = run.indexes.get("rr")
    rels = run.p.glob(CASSETTE_MANIFESTS)
    run.counts["cassettes"] = len(rels)
    if rr is None:
        return
    for rel in rels:
        m = run.validate(rel, rr["cassette"]["manifest_schema"], "rr")
        if m is None:
            continue
        formats = (rr["cassette"]["format"], rr["cassette"].get("compacted_format"))
        if m.get("format") not in formats:
            run.add(
                E_RR_DRIFT,
                rel,
                f"format {m.get('format')!r}, the index declares {rr['cassette']['format']!r} "
                f"(compacted: {rr['cassette'].get('compacted_format')!r})",
                "rr",
            )
        for proto in m.get("protocols", []):
            if not run.on(f"msg_{proto}"):
                run.add(
                    E_PROTOCOL,
                    rel,
                    f"records {proto} but contract msg_{proto} is not enabled",
                    "rr",
                )
        name = (m.get("meta") or {}).get("profile")
        pol = run.policy(name) if isinstance(name, str) else None
        if pol is None:
            run.add(
                E_UNKNOWN_POLICY,
                rel,
                f"recorded under policy {name!r}, not a policy of arch/rr/index.json",
                "rr",
            )
            continue
        if pol["role"] != "record":
            run.add(E_POLICY_ROLE, rel, f"recorded under {name!r}, a {pol['role']} policy", "rr")
        budgets = m.get("budgets") or {}
        cap = run.budget(pol["budget"]) or {}
        for over in run.fits(budgets, cap):
            run.add(E_BUDGET, rel, f"budgets exceed policy {name!r}: {over}", "rr")
        used = {
            "max_frames": int(m.get("frame_count", 0)),
            "max_cassette_bytes": int((m.get("frames_file") or {}).get("bytes", 0))
            + int((m.get("raw_file") or {}).get("bytes", 0)),
        }
        for over in run.fits(used, budgets):
            run.add(E_BUDGET, rel, f"recording exceeds its own budgets: {over}", "rr")
        for route in m.get("routes", []):
            if route.get("upstream") not in pol["upstream_allow"]:
                run.add(
                    E_UPSTREAM,
                    rel,
                    f"route to {route.get('upstream')} is not an allowed upstream of {name!r}",
                    "rr",
                )
