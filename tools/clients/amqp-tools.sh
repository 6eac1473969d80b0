#!/usr/bin/env bash
# AMQP 0-9-1 round trip with the rabbitmq-c command-line tools (Debian amqp-tools, librabbitmq):
# amqp-declare-queue, one amqp-publish connection sending COUNT lines (with a header) to the
# queue, amqp-consume reading COUNT back (each body through `awk 1`, acked after), and
# amqp-delete-queue. OUT gets the bodies, one per line, in delivery order.
#
# Usage: tools/clients/amqp-tools.sh OUT
#   env CLIENT_HOST (127.0.0.1)  CLIENT_PORT (15673: the worker-facing proxy / fake broker)
#       CLIENT_QUEUE (rrlab.client.amqp-tools)  CLIENT_COUNT (100)
#       AMQP_VHOST (rrlab)  AMQP_USER (rrlab)  AMQP_PASSWORD (rrlab-secret-pw, the lab broker's)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUT" >&2; exit 2; }
out=$1
for tool in amqp-declare-queue amqp-publish amqp-consume amqp-delete-queue; do
  command -v "$tool" >/dev/null || {
    echo "amqp-tools: needs $tool (Debian: amqp-tools)" >&2; exit 2; }
done
queue=${CLIENT_QUEUE:-rrlab.client.amqp-tools}
count=${CLIENT_COUNT:-100}
conn=(--server="${CLIENT_HOST:-127.0.0.1}" --port="${CLIENT_PORT:-15673}"
      --vhost="${AMQP_VHOST:-rrlab}" --username="${AMQP_USER:-rrlab}"
      --password="${AMQP_PASSWORD:-rrlab-secret-pw}")
mkdir -p "$(dirname "$out")"
: >"$out"
amqp-declare-queue "${conn[@]}" -q "$queue" >/dev/null
for ((i = 0; i < count; i++)); do
  printf 'msg-%04d n=%d sq=%d\n' "$i" "$i" $((i * i))
done | amqp-publish "${conn[@]}" -r "$queue" -C text/plain -H "source: amqp-tools" -l
amqp-consume "${conn[@]}" -q "$queue" -c "$count" awk 1 >>"$out"
amqp-delete-queue "${conn[@]}" -q "$queue" >/dev/null
got=$(wc -l <"$out")
[ "$got" -eq "$count" ] || { echo "amqp-tools: $got of $count messages" >&2; exit 1; }
