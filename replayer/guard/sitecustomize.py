"""rrlab replay's network guard, loaded at interpreter start from CMD's PYTHONPATH.

Used only where no network namespace can be made: an audit hook refuses every connect (and
UDP send) to an address outside loopback, so a Python CMD replayed offline cannot reach the
network even by accident. Self-contained on purpose: it runs inside the user's program.
"""

import ipaddress
import socket
import sys


def _loopback(address) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like never leave the machine
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a host name: resolved elsewhere, refused here


def _rrlab_network_guard(event, args) -> None:
    if event in ("socket.connect", "socket.sendto"):
        sock, address = args[0], args[-1]
        family = getattr(sock, "family", None)
        if family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            raise PermissionError(
                f"rrlab replay guard: connection to {address!r} refused "
                "(replay runs offline: loopback only)"
            )


sys.addaudithook(_rrlab_network_guard)
