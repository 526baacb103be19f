#!/bin/bash
# make bench: every benchmark against one private RabbitMQ, each printed beside
# the raw rabbitmq-c limit measured in the same run on the same broker.
#
# stdout is a Markdown report (a header line saying machine, RabbitMQ version and
# date, then one table per section), also written to build/bench.md; progress
# goes to stderr. Exits 1 if a section failed or a check did not hold (a 202 or
# a confirm whose message is not in the queue, an incomplete drain).
#
#   BENCH_SECONDS=5   seconds per measured run; the counts of the count-based
#                     sections scale with it (BENCH_SECONDS=2 for a quick look)
#   BENCH_ONLY=NAME   one section: publisher, inbound, outbound, file or spool
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/rabbit.sh
WORK=$(mktemp -d /tmp/sidecar-bench-XXXXXX)
OUT=build/bench.md
LOGS=build/bench-logs
cleanup() {
    rabbit_stop
    rm -rf "$LOGS" && mkdir -p "$LOGS" # the sidecars' and the sink's logs outlive the run
    find "$WORK" -path "$WORK/rabbit" -prune -o -name '*.log' -exec cp {} "$LOGS"/ \;
    rm -rf "$WORK"
}
trap cleanup EXIT
echo "== starting a private RabbitMQ (management plugin on, for the HTTP API comparison)" >&2
rabbit_start "$WORK/rabbit" rabbitmq_management
BROKER_PID=$(rabbitctl eval 'os:getpid().' | tr -d '"')
RABBIT_VERSION=$(rabbitctl version)
CPU_MODEL=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
REV=$(git describe --always --dirty 2>/dev/null || echo unknown)

mkdir -p build
{
    echo "## amqp-sidecar benchmarks"
    echo
    echo "$(nproc) CPUs ($CPU_MODEL) shared by broker, load generator and sidecar;" \
        "RabbitMQ $RABBIT_VERSION; $(date -u '+%Y-%m-%d %H:%M UTC'); sidecar $REV;" \
        "load average at start $LOAD"
    echo
} | tee "$OUT"

failed=()
for name in ${BENCH_ONLY:-publisher inbound outbound file spool}; do
    b=tests/bench/bench_$name.py
    [ -f "$b" ] || { echo "no such section: $name" >&2; failed+=("$name"); continue; }
    echo "== $name" >&2
    if ! /usr/bin/python3 "$b" --amqp-port "$RABBIT_PORT" \
        --rabbitmqctl "env HOME=$WORK/rabbit $RABBIT_BIN/rabbitmqctl -n $RABBIT_NODE" \
        --broker-pid "$BROKER_PID" --mgmt-port "$RABBIT_MGMT_PORT" \
        --sidecar "$PWD/build/amqp-sidecar" --tools "$PWD/build/bench" --workdir "$WORK" |
        tee -a "$OUT"; then
        failed+=("$name")
    fi
done
echo "== report written to $OUT; logs in $LOGS" >&2
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]} (see above)" | tee -a "$OUT" >&2
    exit 1
fi
