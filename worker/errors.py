"""The worker's one error type: a one-line message and the exit code it maps to."""

from __future__ import annotations

USAGE = 2  # bad flags, unwritable output, unreachable broker
FAILED = 1  # the broker was reached but the run did not complete (e.g. messages missing)


class WorkerError(Exception):
    """A failure reported as one line on stderr, without a traceback."""

    def __init__(self, message: str, exit_code: int = USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BrokerUnreachable(WorkerError):
    """No connection to the broker within the timeout (exit 2: fix the address or start it)."""

    def __init__(
        self, driver: str, address: str, detail: str, hint: str = "start it or pass its address"
    ) -> None:
        super().__init__(f"cannot reach {driver} broker at {address}: {detail} ({hint})", USAGE)


class RunFailed(WorkerError):
    """The broker was reached but the produce/consume round trip did not complete (exit 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, FAILED)
