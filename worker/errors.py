"""The worker's one error type: a one-line message and the exit code it maps to."""

from __future__ import annotations

USAGE = 2  # bad flags, unwritable output, unreachable broker
FAILED = 1  # the broker was reached but the run did not complete (e.g. messages missing)


class WorkerError(Exception):
    """A failure reported as one line on stderr, without a traceback."""

    def __init__(self, message: str, exit_code: int = USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


#: where the recording proxy (`rrlab proxy`) and the fake broker (`rrlab serve`) listen for the
#: worker by default: nothing there usually means neither runs
WORKER_FACING_PORTS = frozenset({19092, 19093, 15673, 11883})


def _port(address: str) -> int | None:
    """The port of the first host:port in a URL or a bootstrap list."""
    rest = address.split("://", 1)[-1].split("/", 1)[0].split(",", 1)[0].rsplit("@", 1)[-1]
    port = rest.rpartition(":")[2]
    return int(port) if port.isdigit() else None


def unreachable_hint(address: str) -> str:
    if _port(address) in WORKER_FACING_PORTS:
        return (
            "that is a worker-facing port: start `rrlab proxy` (record) or `rrlab serve` "
            "(replay) there, or pass the broker's own address"
        )
    return "start it or pass its address"


def _same_words(detail: str) -> str:
    """Every driver words a refused connection the same way."""
    words = detail.lower()
    refused = "refused" in words or "errno 111" in words  # asyncio: "Connect call failed"
    return "connection refused" if refused else detail


class BrokerUnreachable(WorkerError):
    """No connection to the broker within the timeout (exit 2: fix the address or start it)."""

    def __init__(self, driver: str, address: str, detail: str, hint: str | None = None) -> None:
        hint = hint or unreachable_hint(address)
        super().__init__(
            f"cannot reach {driver} broker at {address}: {_same_words(detail)} ({hint})", USAGE
        )


class LoginRefused(WorkerError):
    """The broker answered and refused the credentials (exit 2: fix them, not the address)."""

    def __init__(self, driver: str, address: str, detail: str, hint: str) -> None:
        super().__init__(f"{driver} broker at {address} refused the login: {detail} ({hint})")


class RunFailed(WorkerError):
    """The broker was reached but the produce/consume round trip did not complete (exit 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, FAILED)
