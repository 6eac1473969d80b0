"""The `msg` and `msg_*` contracts: connection profiles name existing policies and budgets and fit
them; every destination the worker is configured with, or recorded, is declared."""

from __future__ import annotations

import re
from typing import Any

from .findings import (
    E_BUDGET,
    E_POLICY_ROLE,
    E_PROTOCOL,
    E_TOPIC,
    E_UNKNOWN_BUDGET,
    E_UNKNOWN_POLICY,
    E_UNKNOWN_REF,
    E_UPSTREAM,
    E_WORKER_DRIFT,
)
from .run import AGGREGATES, Run
from .worker_facts import WorkerFactsError, read_worker_facts

# -- msg_*: connection profiles ------------------------------------------------------------


def check_profiles(run: Run) -> None:
    """Each connection profile names existing policies (of the right role) and budgets it fits."""
    if "rr" not in run.indexes:
        return
    for proto in ("kafka", "amqp", "mqtt"):
        cname = f"msg_{proto}"
        prof = run.indexes.get(cname)
        if prof is None:
            continue
        rel = run.contract_index(cname)
        if prof["protocol"] != proto or prof["contract"] != cname:
            run.add(
                E_UNKNOWN_REF,
                rel,
                f"profile of {prof['protocol']!r} for contract "
                f"{prof['contract']!r}, but it is listed under {cname!r}",
                cname,
            )
        for slot, role in (("record", "record"), ("replay", "replay"), ("ci", "replay")):
            ref = prof[slot]
            pol, bud = run.policy(ref["policy"]), run.budget(ref["budget"])
            if pol is None:
                run.add(
                    E_UNKNOWN_POLICY,
                    rel,
                    f"{slot}.policy {ref['policy']!r} is not a policy of arch/rr/index.json",
                    cname,
                )
            elif pol["role"] != role:
                run.add(
                    E_POLICY_ROLE,
                    rel,
                    f"{slot}.policy {ref['policy']!r} is a "
                    f"{pol['role']} policy, {slot} needs a {role} one",
                    cname,
                )
            if bud is None:
                run.add(
                    E_UNKNOWN_BUDGET,
                    rel,
                    f"{slot}.budget {ref['budget']!r} is not a budget of arch/rr/index.json",
                    cname,
                )
            elif pol is not None and (cap := run.budget(pol["budget"])) is not None:
                for over in run.fits(bud, cap):
                    run.add(
                        E_BUDGET,
                        rel,
                        f"{slot}.budget {ref['budget']!r} exceeds policy {ref['policy']!r}: {over}",
                        cname,
                    )
            if slot == "record" and bud is not None:
                limit = {"max_frame_bytes": prof["limits"]["max_frame_bytes"]}
                for over in run.fits(limit, bud):
                    run.add(E_BUDGET, rel, f"limits exceed budget {ref['budget']!r}: {over}", cname)
            if slot == "record" and pol is not None and prof["broker"] not in pol["upstream_allow"]:
                run.add(
                    E_UPSTREAM,
                    rel,
                    f"broker {prof['broker']} is not an allowed upstream of {ref['policy']!r}",
                    cname,
                )


# -- msg: the worker's destinations ------------------------------------------------------


def check_msg(run: Run) -> None:
    """Destinations and brands against the worker's source and the committed aggregates."""
    idx = run.indexes.get("msg")
    if idx is None:
        return
    rel, worker = run.contract_index("msg"), idx["worker"]
    try:
        facts = read_worker_facts(run.p.root, worker["module"], worker["topic_option"])
    except WorkerFactsError as exc:
        run.add(E_WORKER_DRIFT, f"{worker['module']}/", str(exc), "msg")
        return
    if sorted(worker["drivers"]) != sorted(facts.drivers):
        run.add(
            E_WORKER_DRIFT,
            rel,
            f"worker.drivers {sorted(worker['drivers'])} but the "
            f"worker has {sorted(facts.drivers)}",
            "msg",
        )
    brands = idx["brands"]
    if brands["value"]["name"] != facts.envelope_schema:
        run.add(
            E_WORKER_DRIFT,
            rel,
            f"value brand {brands['value']['name']!r} but the "
            f"worker's envelope schema is {facts.envelope_schema!r}",
            "msg",
        )
    if list(brands["key"]["values"]) != list(facts.keys):
        run.add(
            E_WORKER_DRIFT,
            rel,
            f"key brand values {brands['key']['values']} but the "
            f"worker's keys are {list(facts.keys)}",
            "msg",
        )
    for dest in idx["destinations"]:
        for kind, brand in (("key_brand", "key"), ("value_brand", "value")):
            if dest[kind] != brands[brand]["name"]:
                run.add(
                    E_UNKNOWN_REF,
                    rel,
                    f"destination {dest['name']!r}: {kind} {dest[kind]!r} is not a declared brand",
                    "msg",
                )
        for proto in sorted(dest["kinds"]):
            if not run.on(f"msg_{proto}"):
                run.add(
                    E_PROTOCOL,
                    rel,
                    f"destination {dest['name']!r} is used over {proto} "
                    f"but contract msg_{proto} is not enabled",
                    "msg",
                )
                continue
            prof = run.indexes.get(f"msg_{proto}")
            cap = None if prof is None else prof["limits"]["max_value_bytes"]
            if cap is not None and dest["max_value_bytes"] > cap:
                run.add(
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
            run.add(
                E_TOPIC,
                main,
                f"the worker's {driver} destination {configured!r} "
                f"({worker['topic_option']} default {facts.topic_default!r}) is not "
                f"declared in {rel}",
                "msg",
            )
    for agg_rel in run.p.glob(AGGREGATES):
        loaded = run.p.load(agg_rel, "msg")
        value = None if loaded is None else loaded.value
        if not isinstance(value, dict) or value.get("schema") != worker["aggregate"]:
            continue  # another program's output
        if run.validate(agg_rel, worker["aggregate_schema"], "msg") is None:
            continue
        driver, destination = str(value.get("driver")), str(value.get("destination"))
        if _declared(idx, driver, destination, template=False) is None:
            run.add(
                E_TOPIC,
                agg_rel,
                f"recorded {driver} destination {destination!r} is not declared in {rel}",
                "msg",
            )
        run.counts["worker_aggregates"] = run.counts.get("worker_aggregates", 0) + 1


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
