#!/bin/bash
# make bench: every benchmark against one private RabbitMQ, each printed beside
# the raw rabbitmq-c limit measured in the same run on the same broker.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/rabbit.sh
WORK=$(mktemp -d /tmp/sidecar-bench-XXXXXX)
cleanup() { rabbit_stop; rm -rf "$WORK"; }
trap cleanup EXIT
echo "== starting a private RabbitMQ (management plugin on, for the HTTP API comparison)"
rabbit_start "$WORK/rabbit" rabbitmq_management
RAW=build/bench/raw_amqp
PUB=build/bench/bench_publisher
N=${BENCH_COUNT:-50000}

json() { /usr/bin/python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }

echo "== publisher: confirmed persistent 200-byte messages to one durable queue"
$RAW publish --url "$RABBIT_URL" --queue bench.warm --count 5000 --size 200 --window 512 >/dev/null
raw=$($RAW publish --url "$RABBIT_URL" --queue bench.raw --count "$N" --size 200 --window 512)
one=$($RAW publish --url "$RABBIT_URL" --queue bench.one --count $((N / 20)) --size 200 --window 1)
$RAW publish --url "$RABBIT_URL" --queue bench.ours --count 0 --size 200 --window 1 >/dev/null
ours=$($PUB --url "$RABBIT_URL" --queue bench.ours --count "$N" --size 200 --threads 4 --window 1024 2>/dev/null)
raw_rate=$(json rate <<<"$raw")
one_rate=$(json rate <<<"$one")
ours_rate=$(json rate <<<"$ours")
printf '  %-44s %9.0f msg/s\n' "raw rabbitmq-c, pipelined confirms (w=512)" "$raw_rate"
printf '  %-44s %9.0f msg/s\n' "raw rabbitmq-c, one confirm at a time" "$one_rate"
printf '  %-44s %9.0f msg/s   p50 %s ms  p99 %s ms\n' "sidecar publisher (4 threads, w=1024)" \
    "$ours_rate" "$(json p50_ms <<<"$ours")" "$(json p99_ms <<<"$ours")"
/usr/bin/python3 -c "print('  ratio: sidecar/raw-pipelined = %.2fx, sidecar/one-at-a-time = %.1fx' % ($ours_rate/$raw_rate, $ours_rate/$one_rate))"
rabbitctl purge_queue bench.raw >/dev/null; rabbitctl purge_queue bench.ours >/dev/null

for b in tests/bench/bench_${BENCH_ONLY:-*}.py; do
    [ -f "$b" ] || continue
    echo "== $(basename "$b" .py)"
    BENCH_MGMT_PORT=$RABBIT_MGMT_PORT /usr/bin/python3 "$b" --amqp-port "$RABBIT_PORT" \
        --rabbitmqctl "env HOME=$WORK/rabbit /usr/lib/rabbitmq/bin/rabbitmqctl -n $RABBIT_NODE" \
        --sidecar build/amqp-sidecar --raw "$RAW" --workdir "$WORK" || echo "  (failed: $b)"
done
