"""What a replay did, counted in one place: matched, synthesized, missed, unused frames.
A recorded behaviour frame (publish, ack, subscribe, ...: `rr.replay.recording.Role`) left
unused is also a miss, whatever the profile: the live command never did what was recorded.

The same counters feed `/metrics` (prometheus-client, a private registry) and the canonical JSON
report written at the end (`replay-report.json`), which holds no clock value. The registry is
built on first use (from the tallies kept meanwhile), so a fake broker's start-up does not pay
for importing prometheus-client before it listens.
"""

from __future__ import annotations

import itertools
from collections import Counter as Tally
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rrlab.rr.canonical import dumps
from rrlab.rr.codecs import Proto
from rrlab.rr.replay.recording import RecFrame, RecordedConn, Recording
from rrlab.rr.replay.session import Miss

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter

#: Misses and unused frames listed in the report at most (the counts are always whole).
MAX_LISTED = 200

OUTCOMES = ("matched", "synthesized", "missed", "unused")


class ReplayReport:
    def __init__(self) -> None:
        self._registry: CollectorRegistry | None = None  # built on first use: `registry`
        self._frames: Counter | None = None
        self._connections: Counter | None = None
        self._children: dict[tuple[str, str, str], Any] = {}  # labels -> the counter's child
        self.tally: Tally[tuple[str, str, str]] = Tally()
        #: connections accepted, by (proto, bound "yes"/"no"), in first-seen order
        self.connection_tally: Tally[tuple[str, str]] = Tally()
        self.misses: list[Miss] = []
        self.miss_count = 0
        self.unused: list[dict[str, Any]] = []
        self.unused_count = 0
        #: recorded behaviour frames the live command never sent (of the unused; each a miss)
        self.never_sent = 0
        #: connections the fake broker could not accept (too many open files): a client that
        #: could not even connect, so the run can never be called clean
        self.not_accepted = 0
        self.notes: list[str] = []
        self.on_miss: Callable[[Miss], None] | None = None

    @property
    def registry(self) -> CollectorRegistry:
        """The private prometheus-client registry of the counters, built on first use from the
        tallies counted so far (same series, same values, same order as if counted live)."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry, Counter, disable_created_metrics

            disable_created_metrics()  # `_created` samples are clock values: stay comparable
            registry = CollectorRegistry()
            self._frames = Counter(
                "rrlab_replay_frames",
                "Live client frames and recorded frames, by what the replay did with them",
                ["proto", "api", "outcome"],
                registry=registry,
            )
            self._connections = Counter(
                "rrlab_replay_connections",
                "Live connections accepted, by whether they bound to a recorded connection",
                ["proto", "bound"],
                registry=registry,
            )
            for key, n in self.tally.items():
                self._children[key] = child = self._frames.labels(*key)
                child.inc(n)
            for labels, n in self.connection_tally.items():
                self._connections.labels(*labels).inc(n)
            self._registry = registry
        return self._registry

    # -- while serving -------------------------------------------------------------------------

    def count(self, proto: Proto | str, api: str, outcome: str, n: int = 1) -> None:
        key = (str(proto), api, outcome)
        self.tally[key] += n
        if self._frames is None:  # no registry yet: the tally is the count
            return
        child = self._children.get(key)
        if child is None:  # prometheus-client's labels() checks and locks on every call
            child = self._children[key] = self._frames.labels(*key)
        child.inc(n)

    def matched(self, proto: Proto | str, api: str, n: int = 1) -> None:
        self.count(proto, api, "matched", n)

    def synthesized(self, proto: Proto | str, api: str, n: int = 1) -> None:
        self.count(proto, api, "synthesized", n)

    def connection(self, proto: Proto | str, bound: bool) -> None:
        labels = (str(proto), "yes" if bound else "no")
        self.connection_tally[labels] += 1
        if self._connections is not None:
            self._connections.labels(*labels).inc()

    def miss(self, miss: Miss) -> None:
        self.count(miss.proto, miss.api, "missed")
        self.miss_count += 1
        if len(self.misses) < MAX_LISTED:
            self.misses.append(miss)
        if self.on_miss is not None:
            self.on_miss(miss)

    # -- at the end ----------------------------------------------------------------------------

    def collect_unused(self, recording: Recording) -> None:
        """Recorded client frames no live frame consumed (exempt kinds, e.g. liveness, aside):
        counted from the recording's index, and only the first MAX_LISTED of them read."""
        listed = []  # connections with frames to list, in recorded order
        behaviour = []  # ... and those with behaviour never sent
        for rc in recording.conns:
            for kind, n in sorted(rc.unused_kinds().items()):
                if not kind.exempt:
                    self.count(rc.proto, kind.label, "unused", n)
                    self.unused_count += n
                    if not listed or listed[-1] is not rc:
                        listed.append(rc)
                if kind.behaviour:
                    self.never_sent += n
                    if not behaviour or behaviour[-1] is not rc:
                        behaviour.append(rc)
        self._never_sent_misses(behaviour)
        for rc in listed:
            if len(self.unused) >= MAX_LISTED:
                break
            frames = rc.unused_client_frames(skip=lambda kind: kind.exempt)
            for kind, frame in itertools.islice(frames, MAX_LISTED - len(self.unused)):
                self.unused.append(_unused_entry(rc.id, rc.claimed_by, kind.label, frame))

    def _never_sent_misses(self, conns: list[RecordedConn]) -> None:
        """Each recorded behaviour frame no live frame consumed is a miss in every profile,
        named by its recorded connection, position and the live connection bound to it (all
        counted, the first MAX_LISTED listed and announced)."""
        left = MAX_LISTED
        for rc in conns:
            frames = rc.unused_client_frames(skip=lambda kind: not kind.behaviour)
            for kind, frame in itertools.islice(frames, left):
                left -= 1
                where = f"recorded conn {rc.id} frame {frame.index} (seq {frame.seq})"
                bound = "" if rc.claimed_by is not None else "; no live connection bound to it"
                miss = Miss(
                    proto=str(rc.proto),
                    live_conn=rc.claimed_by,
                    recorded_conn=rc.id,
                    api=kind.label,
                    reason=f"recorded {kind.label} never sent by the live command: {where}{bound}",
                    live={},
                    closest=frame.summary,
                )
                if len(self.misses) < MAX_LISTED:
                    self.misses.append(miss)
                if self.on_miss is not None:
                    self.on_miss(miss)

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(OUTCOMES, 0)
        for (_proto, _api, outcome), n in self.tally.items():
            out[outcome] += n
        return out

    def verdict(self, strict: bool) -> str:
        if self.miss_count:
            return "miss"
        if self.not_accepted:
            return "not_accepted"
        if self.never_sent:
            return "miss"
        if strict and self.unused_count:
            return "unused"
        return "ok"

    def to_dict(self, *, strict: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        by_api: dict[str, dict[str, dict[str, int]]] = {}
        for (proto, api, outcome), n in sorted(self.tally.items()):
            by_api.setdefault(proto, {}).setdefault(api, dict.fromkeys(OUTCOMES, 0))[outcome] = n
        out = {
            "by_api": by_api,
            "misses": [m.to_dict() for m in self.misses],
            "misses_listed": len(self.misses),
            "never_sent": self.never_sent,
            "notes": list(self.notes),
            "strict": strict,
            "totals": self.totals(),
            "unused": list(self.unused),
            "unused_listed": len(self.unused),
            "verdict": self.verdict(strict),
        }
        out.update(extra or {})
        return out

    def to_json(self, *, strict: bool, extra: dict[str, Any] | None = None) -> bytes:
        return dumps(self.to_dict(strict=strict, extra=extra)) + b"\n"

    def metrics_text(self) -> bytes:
        """OpenMetrics exposition of the counters (ends with `# EOF`)."""
        from prometheus_client.openmetrics.exposition import generate_latest

        return generate_latest(self.registry)

    def closing_line(self, strict: bool) -> str:
        t = self.totals()
        return (
            f"replay {self.verdict(strict)}: {t['matched']} matched, {t['synthesized']} "
            f"synthesized, {t['missed']} missed, {t['unused']} unused recorded client frames"
        )


def _unused_entry(conn: int, live: int | None, api: str, frame: RecFrame) -> dict[str, Any]:
    return {
        "api": api,
        "bound_to_live_conn": live,
        "recorded_conn": conn,
        "seq": frame.seq,
        "summary": frame.summary,
    }
