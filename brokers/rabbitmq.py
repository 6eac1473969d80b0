"""AMQP 0-9-1 on 127.0.0.1:5672: Debian's RabbitMQ, run as our own process, never the service.

Everything the node writes (mnesia, logs, Erlang cookie) stays under the broker's state dir.
The test fixture (vhost `rrlab`, user `rrlab`) comes from a definitions file loaded at boot,
which is faster than rabbitmqctl calls after start. We run our own epmd on loopback so `down`
can stop it too (the one erl would spawn daemonizes out of our process group).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from rrlab.brokers import probes, process

HOST = "127.0.0.1"
PORT = 5672
EPMD_PORT = 4369
#: RabbitMQ's Erlang distribution port (loopback only; rabbitmqctl uses it).
DIST_PORT = 25672
NODENAME = "rrlab@localhost"
VHOST = "rrlab"
USER = "rrlab"
#: A test fixture credential; the redaction tests prove it never reaches a cassette.
PASSWORD = "rrlab-secret-pw"
URL = f"amqp://{USER}:{PASSWORD}@{HOST}:{PORT}/{VHOST}"
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def _definitions() -> dict:
    perms = {"configure": ".*", "write": ".*", "read": ".*"}
    return {
        "users": [{"name": USER, "password": PASSWORD, "tags": "administrator"}],
        "vhosts": [{"name": "/"}, {"name": VHOST}],
        "permissions": [{"user": USER, "vhost": v, **perms} for v in ("/", VHOST)],
    }


def _config(home: Path, port: int) -> str:
    return (
        f"listeners.tcp.default = {HOST}:{port}\n"
        f"load_definitions = {home / 'definitions.json'}\n"
        "disk_free_limit.absolute = 50MB\n"
        "log.console = true\n"
        "log.console.level = info\n"
        "log.file = false\n"
    )


def start(home: Path, port: int = PORT) -> dict:
    """Spawn epmd (if none on loopback) and a RabbitMQ node with its files under `home`.

    Off the default port the node gets its own name and distribution port (port + 20000, as
    RabbitMQ does), so a second node can run beside the shared one.
    """
    if not Path(SERVER).exists():
        raise RuntimeError(
            f"RabbitMQ is not installed ({SERVER} missing); run tools/ensure-system-packages"
        )
    for sub in ("mnesia", "log", "home"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "definitions.json").write_text(json.dumps(_definitions(), indent=2))
    (home / "rabbitmq.conf").write_text(_config(home, port))
    (home / "enabled_plugins").write_text("[].\n")
    log = home / "rabbitmq.log"
    env = {
        "HOME": str(home / "home"),
        "ERL_EPMD_ADDRESS": HOST,
        "ERL_EPMD_PORT": str(EPMD_PORT),
        "RABBITMQ_NODENAME": NODENAME if port == PORT else f"rrlab{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(DIST_PORT if port == PORT else port + 20000),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(home / "rabbitmq.pid"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    procs = {}
    if not probes.port_open(HOST, EPMD_PORT):
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        procs["epmd"] = process.spawn(
            [epmd, "-address", HOST, "-port", str(EPMD_PORT)], home / "epmd.log"
        )
        deadline = time.monotonic() + 5
        while not probes.port_open(HOST, EPMD_PORT) and time.monotonic() < deadline:
            time.sleep(0.02)
    procs["server"] = process.spawn([SERVER], log, env=env, cwd=home)
    return {
        "impl": "rabbitmq",
        "host": HOST,
        "port": port,
        "log": str(log),
        "procs": procs,
        "url": f"amqp://{USER}:{PASSWORD}@{HOST}:{port}/{VHOST}",
    }


def probe(record: dict) -> str | None:
    return probes.amqp(record["url"])
