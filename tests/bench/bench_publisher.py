"""Publisher micro-benchmark: the sidecar's confirm pipeline (adapter/publisher.c,
driven directly by build/bench/bench_publisher with 4 submitting threads, no
HTTP) beside raw rabbitmq-c with 512 and with 1 publish awaiting confirms:
confirmed persistent 200-byte messages to one durable queue through the
default exchange, bare properties, on one private broker.
"""
import os
import resource

from benchlib import Broker, Tools, args, bench_seconds, fmt, per_msg_us, progress, table, tick_note

QUEUES = ("bench.pub.raw", "bench.pub.one", "bench.pub.ours")


def children_cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def main():
    a = args(__doc__).parse_args()
    count = int(os.environ.get("BENCH_COUNT", str(int(10000 * bench_seconds()))))
    broker = Broker(a)
    tools = Tools(a.tools, broker.url)
    for q in QUEUES:
        broker.declare(q)
    tools.raw("publish", "--queue", "bench.pub.warm", "--count", 5000, "--window", 512)
    broker.delete("bench.pub.warm")

    def measure(what, tool, queue, n, *argv):
        """tool is [binary, mode…]."""
        progress(f"publisher: {what}")
        broker.purge(queue)
        broker_before, client_before = broker.cpu(), children_cpu()
        r = tools.run(*tool, "--url", broker.url, "--queue", queue, "--count", n, "--size", 200,
                      *argv)
        r["broker_us"] = per_msg_us(broker.cpu() - broker_before, n)
        r["client_us"] = per_msg_us(children_cpu() - client_before, n)
        r["count"] = n
        return r

    raw = measure("raw, 512 in flight", ("raw_amqp", "publish"), QUEUES[0], count, "--window", 512)
    one = measure("raw, 1 in flight", ("raw_amqp", "publish"), QUEUES[1], count // 20, "--window", 1)
    ours = measure("the sidecar's publisher", ("bench_publisher",), QUEUES[2], count,
                   "--threads", 4, "--window", 1024)
    broker.delete(*QUEUES)
    table("Publisher: confirmed persistent 200-byte messages, one durable queue",
          ["publisher", "messages", "msg/s", "p50 / p99 ms", "÷ raw, 512 in flight",
           "client CPU µs/msg", "broker CPU µs/msg"],
          [[name, fmt(r["count"]), fmt(r["rate"]),
            f"{fmt(r['p50_ms'], 2)} / {fmt(r['p99_ms'], 2)}", fmt(r["rate"] / raw["rate"], 2),
            fmt(r["client_us"], 1), fmt(r["broker_us"], 1)]
           for name, r in (("raw rabbitmq-c, 512 in flight", raw),
                           ("raw rabbitmq-c, 1 in flight (each confirm awaited)", one),
                           ("the sidecar's publisher (`adapter/publisher.c`, 4 submitting "
                            "threads, ≤ 1024 in flight)", ours))],
          ["p50/p99: publish (or submit) → confirm of each message. CPU µs/msg: the client "
           "process's user+system CPU (getrusage of the child, start-up and connection "
           "included) and all of beam.smp's (/proc/PID/stat) over the run, per message. "
           + tick_note(count // 20)])
    if ours.get("failed"):
        print(f"**ERROR**: {ours['failed']} publishes of the sidecar's publisher failed\n")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
