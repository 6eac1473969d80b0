"""`rrlab serve` under a Python audit hook that logs every outbound socket operation.

    python audited_serve.py LOG -- serve --cassette DIR ...

Each `socket.connect`, `socket.sendto` and `socket.getaddrinfo` the fake broker makes is
appended to LOG (one line each), so a test can prove it never reached for the network.
"""

from __future__ import annotations

import sys
from typing import Any

WATCHED = ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo")


def main() -> int:
    log_path, sep, *argv = sys.argv[1:]
    assert sep == "--", "usage: audited_serve.py LOG -- ARGS"
    log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in WATCHED:
            log.write(f"{event} {args[1:]!r}\n")
            log.flush()

    sys.addaudithook(hook)
    from rrlab.cli import main as rrlab_main

    return rrlab_main(argv)


if __name__ == "__main__":
    sys.exit(main())
