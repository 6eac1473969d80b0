"""A Celery application written the ordinary way, for the Celery record/replay tests.

Configured from the environment only, as deployments usually are: CELERY_BROKER_URL (the
worker-facing AMQP port: the recording proxy, or the fake broker in replay) and
RRLAB_CELERY_BACKEND (`rpc://`, Celery's result backend over the broker; `none`: no result
backend, the worker itself writes each task's output under RRLAB_CELERY_OUT). Nothing here knows
about recording or replay.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from celery import Celery
from celery.signals import worker_ready

BROKER = "amqp://rrlab:rrlab-secret-pw@127.0.0.1:15673/rrlab"
_backend = os.environ.get("RRLAB_CELERY_BACKEND", "rpc://")

app = Celery(
    "rrcelery",
    broker=os.environ.get("CELERY_BROKER_URL", BROKER),
    backend=None if _backend == "none" else _backend,
)


def _total(quantity: int, unit_cents: int) -> int:
    """The tasks' arithmetic. RRLAB_CELERY_SURCHARGE_CENTS stands for a change to this code (a
    replay of a changed task body must not pass)."""
    return quantity * unit_cents + int(os.environ.get("RRLAB_CELERY_SURCHARGE_CENTS", "0"))


@app.task(name="rrcelery.price")
def price(order: int, quantity: int, unit_cents: int) -> dict:
    """A result that depends on every argument (a changed argument changes the output)."""
    return {"order": order, "total_cents": _total(quantity, unit_cents)}


@app.task(name="rrcelery.store")
def store(order: int, quantity: int, unit_cents: int) -> None:
    """The no-backend variant: the worker writes the task's output itself."""
    out = Path(os.environ["RRLAB_CELERY_OUT"])
    out.mkdir(parents=True, exist_ok=True)
    data = {"order": order, "total_cents": _total(quantity, unit_cents)}
    tmp = out / f".{order}.tmp"
    tmp.write_text(json.dumps(data, sort_keys=True))
    tmp.rename(out / f"{order}.json")


@worker_ready.connect
def _say_ready(**_kwargs: object) -> None:
    """Tell the runner the worker consumes (a file, as a supervisor's readiness probe would)."""
    ready = os.environ.get("RRLAB_CELERY_READY")
    if ready:
        Path(ready).touch()
