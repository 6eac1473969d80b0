#!/usr/bin/env bash
# MQTT 5 request/response with Eclipse Mosquitto's own clients, for the binding tests: the
# requester is `mosquitto_rr` with client id `svc-` + 8 random hex digits and response topic
# `reply/<client id>`, and puts a random correlation data on its request (32 hex digits, or with
# MQTT_CORRELATION=binary 16 random bytes that are not UTF-8: 0x80-0xff each); the
# responder (`mosquitto_sub` for one request, then `mosquitto_pub`) answers on the request's
# response topic with its correlation data, as MQTT 5 request/response asks. The requester
# accepts only an answer carrying its own correlation data. OUT gets "x squared = y".
#
# Usage: tests/replay/mqtt5_request_response.sh OUT [X]
#   env MQTT_PORT (11883)  MQTT_WAIT (30: seconds each client waits)
#       MQTT_CORRELATION (text | binary)
set -euo pipefail
export LC_ALL=C  # correlation data may be bytes that are not text
[ $# -ge 1 ] || { echo "usage: $0 OUT [X]" >&2; exit 2; }
out=$1
x=${2:-7}
port=${MQTT_PORT:-11883}
wait=${MQTT_WAIT:-30}
client_id="svc-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
if [ "${MQTT_CORRELATION:-text}" = binary ]; then
  escaped=""
  for byte in $(od -An -N16 -tu1 /dev/urandom); do escaped+=$(printf '\\x%02x' $((byte | 128))); done
  correlation=$(printf "$escaped")
else
  correlation=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
fi
common=(-h 127.0.0.1 -p "$port" -V mqttv5 -q 1)
asked=$(mktemp)
sub=""
trap 'rm -f "$asked"; [ -n "$sub" ] && kill "$sub" 2>/dev/null; true' EXIT

# the responder: one request, printed as "response-topic correlation-data payload"
stdbuf -oL mosquitto_sub -d "${common[@]}" -t rpc/square -C 1 -W "$wait" -F 'REQ %R %D %p' \
  >"$asked" &
sub=$!
for _ in $(seq 300); do
  grep -q 'received SUBACK' "$asked" && break
  kill -0 "$sub" 2>/dev/null || break
  sleep 0.1
done
grep -q 'received SUBACK' "$asked" || { echo "responder: no SUBACK" >&2; cat "$asked" >&2; exit 1; }

# the requester, in the background: it subscribes to its response topic, then asks
answer=$(mktemp)
mosquitto_rr "${common[@]}" -i "$client_id" -t rpc/square -e "reply/$client_id" -W "$wait" \
  -D PUBLISH correlation-data "$correlation" -m "{\"x\": $x}" -F '%D %p' >"$answer" &
rr=$!

wait "$sub"
sub=""
read -r _tag topic corr payload < <(grep -a '^REQ ' "$asked")
[[ $payload =~ \"x\":\ *([0-9]+) ]] || { echo "responder: bad request $payload" >&2; exit 1; }
asked_x=${BASH_REMATCH[1]}
mosquitto_pub "${common[@]}" -t "$topic" -D PUBLISH correlation-data "$corr" \
  -m "{\"y\": $((asked_x * asked_x))}"

wait "$rr"
read -r got_corr got_payload <"$answer"
rm -f "$answer"
[ "$got_corr" = "$correlation" ] || {
  echo "requester: answer for correlation $got_corr, not ours ($correlation)" >&2
  exit 1
}
[[ $got_payload =~ \"y\":\ *([0-9]+) ]] || { echo "requester: bad answer $got_payload" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
echo "$x squared = ${BASH_REMATCH[1]}" >"$out"
