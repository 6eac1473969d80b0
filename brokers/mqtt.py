"""MQTT on 127.0.0.1:1883: amqtt's broker (default, from the venv) or Debian's Mosquitto.

Anonymous by default. `users={"name": "password"}` starts a password-protected broker
(anonymous refused) for tests of MQTT password redaction.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from rrlab.brokers import probes, process

HOST = "127.0.0.1"
PORT = 1883
IMPLS = ("amqtt", "mosquitto")
MOSQUITTO = "/usr/sbin/mosquitto"


def start(
    home: Path, impl: str = "amqtt", port: int = PORT, users: dict[str, str] | None = None
) -> dict:
    """Spawn the MQTT broker with config and logs under `home`."""
    home.mkdir(parents=True, exist_ok=True)
    if impl == "amqtt":
        argv = _amqtt(home, port, users)
    elif impl == "mosquitto":
        argv = _mosquitto(home, port, users)
    else:
        raise ValueError(f"unknown mqtt impl {impl!r}: choose one of {', '.join(IMPLS)}")
    log = home / f"{impl}.log"
    proc = process.spawn(argv, log, cwd=home)
    record = {"impl": impl, "host": HOST, "port": port, "log": str(log), "procs": {"broker": proc}}
    if users:
        name, password = next(iter(users.items()))
        record["probe_user"] = {"username": name, "password": password}
    return record


def probe(record: dict) -> str | None:
    creds = record.get("probe_user") or {}
    return probes.mqtt(record["host"], record["port"], creds.get("username"), creds.get("password"))


def _amqtt(home: Path, port: int, users: dict[str, str] | None) -> list[str]:
    if users:
        from pwdlib import PasswordHash

        hasher = PasswordHash.recommended()
        lines = [f"{name}:{hasher.hash(pw)}\n" for name, pw in users.items()]
        (home / "passwd").write_text("".join(lines))
        auth = {
            "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(home / "passwd")}
        }
    else:
        auth = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
        "plugins": auth,
    }
    path = home / "amqtt.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(path)]


def _mosquitto(home: Path, port: int, users: dict[str, str] | None) -> list[str]:
    if not Path(MOSQUITTO).exists():
        raise RuntimeError(
            f"Mosquitto is not installed ({MOSQUITTO} missing); run tools/ensure-system-packages"
        )
    # run as ourselves: mosquitto started by root otherwise drops to user `mosquitto`, which
    # cannot read a password file under a private (0700) state dir
    me = pwd.getpwuid(os.geteuid()).pw_name
    lines = [f"listener {port} {HOST}", f"user {me}", "persistence false", "log_dest stdout"]
    if users:
        passwd = home / "passwd"
        passwd.touch()
        for name, password in users.items():
            tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            subprocess.run([tool, "-b", str(passwd), name, password], check=True, timeout=30)
        lines += ["allow_anonymous false", f"password_file {passwd}"]
    else:
        lines.append("allow_anonymous true")
    path = home / "mosquitto.conf"
    path.write_text("\n".join(lines) + "\n")
    return [MOSQUITTO, "-c", str(path)]
