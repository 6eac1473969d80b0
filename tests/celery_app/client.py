"""The Celery client: sends COUNT `price` (or, with no result backend, `store`) tasks with
their arguments; with a result backend it waits for each result and writes them all to OUT as
canonical JSON. --unit-cents changes one argument of every task (a changed run).

Usage: python client.py OUT [--count N] [--unit-cents C]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rrcelery import app, price, store

RESULT_TIMEOUT = 60.0  # seconds for each result


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="where the results go (with a result backend)")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--unit-cents", type=int, default=250)
    args = p.parse_args(argv)
    orders = [(n, n + 1, args.unit_cents) for n in range(args.count)]
    if app.conf.result_backend is None:
        for order in orders:
            store.delay(*order)
        return 0
    pending = [price.delay(*order) for order in orders]
    results = [result.get(timeout=RESULT_TIMEOUT) for result in pending]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, sort_keys=True, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
