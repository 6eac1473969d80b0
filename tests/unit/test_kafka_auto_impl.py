"""`rrlab brokers up` picks Apache Kafka where it can run, else Tansu (`--kafka-impl auto`).

Tansu holds every consumer group join for half the session timeout; Apache Kafka joins at once
but needs `java`, and `mvn` or cached jars. What is on PATH is faked with `shutil.which`; no
broker starts here (tests/live/test_brokers.py starts them): the port `up` would use is held
by a socket of this test, so `up` stops right after its choice.
"""

from __future__ import annotations

import shutil
import socket

import pytest

from rrlab.brokers import control, kafka


@pytest.fixture
def on_path(monkeypatch, tmp_path):
    """Call with the commands found on PATH; the jar cache starts empty (a private dir)."""
    monkeypatch.setenv("RRLAB_KAFKA_LIBS", str(tmp_path / "kafka-libs"))
    monkeypatch.setenv("RRLAB_STATE_DIR", str(tmp_path / "state"))

    def found(*commands: str) -> None:
        monkeypatch.setattr(
            shutil, "which", lambda cmd, *a, **k: f"/usr/bin/{cmd}" if cmd in commands else None
        )

    return found


def _cache_jars() -> None:
    libs = kafka.libs_dir()
    libs.mkdir(parents=True)
    (libs / ".complete").write_text(kafka._pom_digest() + "\n")


def test_java_and_mvn_choose_apache(on_path) -> None:
    on_path("java", "mvn")
    assert kafka.choose_impl() == (
        "apache",
        "java and mvn found; --kafka-impl tansu for the embedded binary",
    )


def test_java_and_cached_jars_choose_apache_without_maven(on_path) -> None:
    on_path("java")
    _cache_jars()
    impl, why = kafka.choose_impl()
    assert (impl, why.split(";")[0]) == ("apache", "java found, broker jars cached")


def test_jars_of_another_pom_are_not_a_cache(on_path) -> None:
    on_path("java")
    _cache_jars()
    (kafka.libs_dir() / ".complete").write_text("an older pom\n")
    impl, why = kafka.choose_impl()
    assert impl == "tansu"
    assert why == (
        "no mvn on PATH and no cached broker jars: consumer groups join in half the session "
        "timeout; install maven for Apache Kafka"
    )


@pytest.mark.parametrize("found", [(), ("mvn",)])
def test_no_java_chooses_tansu_and_says_what_to_install(on_path, found) -> None:
    on_path(*found)
    _cache_jars()  # jars alone do not run without java
    assert kafka.choose_impl() == (
        "tansu",
        "no java on PATH: consumer groups join in half the session timeout; "
        "install openjdk-17 + maven for Apache Kafka",
    )


@pytest.mark.parametrize(
    ("found", "line"),
    [
        (("java", "mvn"), "kafka: auto chose apache (java and mvn found; --kafka-impl tansu"),
        ((), "kafka: auto chose tansu (no java on PATH: consumer groups join in half"),
    ],
)
def test_up_defaults_to_auto_and_prints_its_choice(on_path, capsys, found, line) -> None:
    on_path(*found)
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        with pytest.raises(control.BrokerError, match=f"127.0.0.1:{port} for kafka is taken"):
            control.up(["kafka"], ports={"kafka": port})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(line), printed


def test_explicit_impl_prints_no_choice_and_auto_is_only_for_kafka(on_path, capsys) -> None:
    on_path("java", "mvn")
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        with pytest.raises(control.BrokerError, match="is taken"):
            control.up(["kafka"], kafka_impl="tansu", ports={"kafka": port})
        with pytest.raises(control.BrokerError, match="is taken"):
            control.up(["mqtt"], ports={"mqtt": port})  # no Kafka: no Kafka line
    assert "auto chose" not in capsys.readouterr().out


def test_unknown_impl_names_every_choice(on_path) -> None:
    with pytest.raises(control.BrokerError, match="'zookeeper': choose auto, tansu, apache$"):
        control.up(["kafka"], kafka_impl="zookeeper")


def test_cli_default_is_auto() -> None:
    import argparse

    from rrlab.brokers import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["brokers", "up", "kafka"])
    assert args.kafka_impl == "auto"
