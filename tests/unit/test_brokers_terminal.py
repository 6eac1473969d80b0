"""`rrlab brokers`: logs kept after `down` (until the next `up`), a foreign port holder named,
the timeout said as given. No broker runs: a record of a dead process, a socket of our own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from rrlab.brokers import control, state
from rrlab.brokers.ports import port_holder


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RRLAB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def _dead_record(home, log) -> dict:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(done.stdout)
    return {"impl": "amqtt", "host": "127.0.0.1", "port": 1, "log": str(log),
            "procs": {"broker": {"pid": pid, "start": 1}}}  # fmt: skip


def test_down_keeps_the_log_until_the_next_up(state_dir, capsys) -> None:
    home = state.broker_dir("mqtt")
    (home / "data").mkdir(parents=True)
    (home / "data" / "db").write_text("x")
    (home / "logs").mkdir()
    log = home / "logs" / "amqtt.log"
    log.write_text("broker said why it crashed\n")
    (home / "logs" / "other.log").write_text("x")
    state.save("mqtt", _dead_record(home, log))
    control.down(["mqtt"])
    out = capsys.readouterr().out
    assert f"log kept until the next up: {log}" in out
    assert log.read_text() == "broker said why it crashed\n"
    assert state.load("mqtt") is None  # forgotten: status says down, and where the log is
    (row,) = control.status(["mqtt"])
    assert row["state"] == "down" and row["log"] == str(log)
    assert sorted(p.name for p in home.rglob("*") if p.is_file()) == ["amqtt.log"]
    state.forget("mqtt")  # what `up` does before starting again
    assert not home.exists()


def test_status_names_a_foreign_holder_of_the_port(state_dir, monkeypatch) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setitem(control.DEFAULT_PORTS, "mqtt", port)
        assert port_holder(port) is not None and f"pid {os.getpid()} (" in port_holder(port)
        (row,) = control.status(["mqtt"])
        assert row["state"] == f"down; port taken by {port_holder(port)}"
        assert row["state"].startswith(f"down; port taken by pid {os.getpid()} (")
        assert sys.executable in row["state"] or "python" in row["state"]
        with pytest.raises(control.BrokerError, match=rf"taken by pid {os.getpid()} \("):
            control.up(["mqtt"], ports={"mqtt": port}, out=None)
    (row,) = control.status(["mqtt"])
    assert row["state"] == "down"
    assert port_holder(port) is None


def test_an_fd_closed_while_looking_does_not_hide_the_holder(monkeypatch) -> None:
    """Under pytest-xdist the holder's other threads close fds while /proc is read: one fd
    gone between listing and readlink hid the whole process ("pid not visible")."""
    readlink = os.readlink
    first_fd = min(os.listdir(f"/proc/{os.getpid()}/fd"), key=int)  # not the socket (opened below)
    gone = f"/proc/{os.getpid()}/fd/{first_fd}"

    def flaky(path, *args, **kwargs):
        if str(path) == gone:
            raise FileNotFoundError(path)
        return readlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "readlink", flaky)
    with socket.create_server(("127.0.0.1", 0)) as holder:
        assert port_holder(holder.getsockname()[1]).startswith(f"pid {os.getpid()} (")


def test_timeout_message_says_the_timeout_given(state_dir, monkeypatch) -> None:
    record = {"impl": "amqtt", "host": "127.0.0.1", "port": 1, "log": "/x/amqtt.log",
              "procs": {"broker": {"pid": os.getpid()}}}  # fmt: skip
    monkeypatch.setattr(control.MODULES["mqtt"], "probe", lambda _r: "connection refused")
    monkeypatch.setattr(control, "_running", lambda _r: True)
    with pytest.raises(control.BrokerError, match=r"not ready after 0\.5 s \(connection refused\)"):
        control._wait({"mqtt": (record, 0.0)}, 0.5, {}, None)
