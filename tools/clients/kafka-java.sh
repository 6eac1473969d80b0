#!/usr/bin/env bash
# Kafka round trip with Apache Kafka's Java client (kafka-clients jar): AdminClient creates the
# topic, a default producer (idempotent) sends COUNT keyed records with headers, a consumer
# group reads them back; OUT gets one line per record in offset order plus the count.
#
# Usage: tools/clients/kafka-java.sh OUT
#        tools/clients/kafka-java.sh --prepare   (fetch the jars, compile the client, exit)
#   env CLIENT_HOST (127.0.0.1)  CLIENT_PORT (19092: the worker-facing proxy / fake broker)
#       CLIENT_TOPIC (rrlab.client.java)  CLIENT_GROUP (TOPIC.group)  CLIENT_COUNT (100)
#       CLIENT_ID (random: a client.id svc-<8 hex> naming topic and group; unset: defaults)
# The jars are the Apache broker's, fetched with Maven into .rrlab/kafka-libs (or
# RRLAB_KAFKA_LIBS) by --prepare or `rrlab brokers up kafka --kafka-impl apache`; the program is
# compiled into .rrlab/clients/java/<source hash>/, never committed. Maven needs the network, so
# --prepare runs before `rrlab replay` puts the client in a namespace without one (the scenario
# lists name it: tools/replay-cassettes runs it first); the client itself never fetches.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUT | --prepare" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
src=$root/tools/clients/java/KafkaRoundTrip.java
libs=${RRLAB_KAFKA_LIBS:-$root/.rrlab/kafka-libs}
command -v java >/dev/null && command -v javac >/dev/null || {
  echo "kafka-java: needs java and javac (Debian: openjdk-17-jdk-headless)" >&2; exit 2; }
if [ "$1" = --prepare ]; then
  "$root/.venv/bin/python" -c "from rrlab.brokers.kafka import ensure_libs; ensure_libs()" >&2 || {
    echo "kafka-java: no Kafka jars in $libs (Maven needs the network)" >&2; exit 2; }
elif [ ! -e "$libs/.complete" ]; then
  echo "kafka-java: no Kafka jars in $libs: run \`$0 --prepare\` first, where the network" \
    "is reachable (Maven fetches them; \`make ci\` and \`make test\` do it)" >&2
  exit 2
fi
cp=""
for pattern in kafka-clients slf4j-api lz4-java snappy-java zstd-jni log4j-api log4j-core \
  log4j-slf4j-impl; do
  jar=$(compgen -G "$libs/$pattern-[0-9]*.jar" | head -n1) || true
  [ -n "$jar" ] || { echo "kafka-java: $pattern jar missing in $libs" >&2; exit 2; }
  cp+="$jar:"
done
classes=$root/.rrlab/clients/java/$(sha256sum "$src" | cut -c1-16)
if [ ! -e "$classes/KafkaRoundTrip.class" ]; then
  mkdir -p "$(dirname "$classes")"
  tmp=$(mktemp -d "$classes.XXXXXX")
  javac -nowarn -cp "$cp" -d "$tmp" "$src"
  mv -T "$tmp" "$classes" 2>/dev/null || rm -rf "$tmp"  # a concurrent compile won the race
fi
if [ "$1" = --prepare ]; then
  echo "kafka-java: ready (jars in $libs, client compiled in $classes)" >&2
  exit 0
fi
out=$1
topic=${CLIENT_TOPIC:-rrlab.client.java}
exec java -Xmx256m -cp "$classes:$cp" KafkaRoundTrip \
  "${CLIENT_HOST:-127.0.0.1}:${CLIENT_PORT:-19092}" "$topic" "${CLIENT_COUNT:-100}" "$out" \
  "${CLIENT_GROUP:-$topic.group}"
