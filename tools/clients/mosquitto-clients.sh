#!/usr/bin/env bash
# MQTT round trip with Eclipse Mosquitto's command-line clients (libmosquitto, C): mosquitto_sub
# subscribes at QoS 1 and waits for COUNT messages; once its SUBACK is in, one mosquitto_pub
# connection publishes COUNT lines at QoS 1. OUT gets "topic qos payload" per message, in order.
#
# Usage: tools/clients/mosquitto-clients.sh [-V mqttv31|mqttv311|mqttv5] OUT
#   -V: the protocol version both clients speak (default: theirs, 3.1.1)
#   env CLIENT_HOST (127.0.0.1)  CLIENT_PORT (11883: the worker-facing proxy / fake broker)
#       CLIENT_TOPIC (rrlab/client/mosquitto)  CLIENT_COUNT (100)
set -euo pipefail
version=()
if [ "${1:-}" = -V ] && [ $# -ge 2 ]; then version=(-V "$2"); shift 2; fi
[ $# -eq 1 ] || { echo "usage: $0 [-V mqttv31|mqttv311|mqttv5] OUT" >&2; exit 2; }
out=$1
for tool in mosquitto_sub mosquitto_pub; do
  command -v "$tool" >/dev/null || {
    echo "mosquitto-clients: needs $tool (Debian: mosquitto-clients)" >&2; exit 2; }
done
host=${CLIENT_HOST:-127.0.0.1}
port=${CLIENT_PORT:-11883}
topic=${CLIENT_TOPIC:-rrlab/client/mosquitto}
count=${CLIENT_COUNT:-100}
mkdir -p "$(dirname "$out")"
raw=$(mktemp)
sub=""
trap 'rm -f "$raw"; [ -n "$sub" ] && kill "$sub" 2>/dev/null; true' EXIT
# -d: the debug lines (on stdout, line-buffered by stdbuf so they can be watched) say when the
# SUBACK arrived; messages are told apart from them by "MSG ".
stdbuf -oL mosquitto_sub "${version[@]}" -d -h "$host" -p "$port" -t "$topic" -q 1 -C "$count" -W 60 \
  -F 'MSG %t %q %p' >"$raw" &
sub=$!
for _ in $(seq 300); do
  grep -q '^Client .* received SUBACK' "$raw" && break
  kill -0 "$sub" 2>/dev/null || break
  sleep 0.1
done
grep -q '^Client .* received SUBACK' "$raw" || {
  echo "mosquitto-clients: no SUBACK" >&2; cat "$raw" >&2; exit 1; }
for ((i = 0; i < count; i++)); do
  printf 'msg-%04d n=%d sq=%d\n' "$i" "$i" $((i * i))
done | mosquitto_pub "${version[@]}" -h "$host" -p "$port" -t "$topic" -q 1 -l
rc=0
wait "$sub" || rc=$?
sub=""
[ "$rc" -eq 0 ] || { echo "mosquitto-clients: mosquitto_sub exit $rc" >&2; cat "$raw" >&2; exit 1; }
grep '^MSG ' "$raw" | cut -c5- >"$out"
got=$(wc -l <"$out")
[ "$got" -eq "$count" ] || { echo "mosquitto-clients: $got of $count messages" >&2; exit 1; }
