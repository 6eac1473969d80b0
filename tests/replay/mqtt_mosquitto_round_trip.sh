#!/usr/bin/env bash
# MQTT round trip with Eclipse Mosquitto's clients (libmosquitto; empty client ids, the broker
# assigns one), for the MQTT replay tests: mosquitto_sub waits for COUNT messages; once its SUBACK
# is in, one mosquitto_pub connection publishes COUNT JSON lines at MQTT_QOS, PAUSE seconds apart
# (a slow publisher: with a short KEEPALIVE both clients send PINGREQs in between). OUT gets
# "topic qos payload" per received message.
#
# Usage: tests/replay/mqtt_mosquitto_round_trip.sh OUT
#   env MQTT_PORT (11883)  MQTT_TOPIC (rrlab/replay/mosquitto)  MQTT_COUNT (20)
#       MQTT_VERSION (mqttv311 | mqttv5)  MQTT_KEEPALIVE (60)  MQTT_PAUSE (0)  MQTT_SEED (1)
#       MQTT_WAIT (60: seconds mosquitto_sub waits for its messages, mosquitto_pub runs at most)
#       MQTT_QOS (1: both clients' QoS)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUT" >&2; exit 2; }
out=$1
port=${MQTT_PORT:-11883}
topic=${MQTT_TOPIC:-rrlab/replay/mosquitto}
count=${MQTT_COUNT:-20}
version=${MQTT_VERSION:-mqttv311}
keepalive=${MQTT_KEEPALIVE:-60}
pause=${MQTT_PAUSE:-0}
seed=${MQTT_SEED:-1}
raw=$(mktemp)
sub=""
trap 'rm -f "$raw"; [ -n "$sub" ] && kill "$sub" 2>/dev/null; true' EXIT
common=(-h 127.0.0.1 -p "$port" -t "$topic" -q "${MQTT_QOS:-1}" -V "$version" -k "$keepalive")
stdbuf -oL mosquitto_sub -d "${common[@]}" -C "$count" -W "${MQTT_WAIT:-60}" -F 'MSG %t %q %p' >"$raw" &
sub=$!
for _ in $(seq 300); do
  grep -q 'received SUBACK' "$raw" && break
  kill -0 "$sub" 2>/dev/null || break
  sleep 0.1
done
grep -q 'received SUBACK' "$raw" || { echo "mosquitto: no SUBACK" >&2; cat "$raw" >&2; exit 1; }
for ((i = 0; i < count; i++)); do
  printf '{"n":%d,"seed":%d,"sq":%d}\n' "$i" "$seed" $((i * i))
  [ "$pause" = 0 ] || sleep "$pause"
done | timeout "${MQTT_WAIT:-60}" mosquitto_pub "${common[@]}" -l  # it reconnects when refused
rc=0
wait "$sub" || rc=$?
sub=""
[ "$rc" -eq 0 ] || { echo "mosquitto: mosquitto_sub exit $rc" >&2; cat "$raw" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
grep '^MSG ' "$raw" | cut -c5- >"$out"
got=$(wc -l <"$out")
[ "$got" -eq "$count" ] || { echo "mosquitto: $got of $count messages" >&2; exit 1; }
