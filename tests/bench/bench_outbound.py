"""Outbound matrix: the sidecar's http outbound route draining a queue into a
fast local HTTP sink (tests/bench/sink.c, libmicrohttpd, answers 200) at
concurrency N, beside two yardsticks at prefetch N: `raw_amqp consume`
(consume and ack, no HTTP at all) and `raw_http_out` (consume, POST each to the
same sink with libcurl's multi interface, ack on the answer: the sidecar's two
libraries with nothing of the sidecar), N = 1, 16, 64, 256, on one private broker.

Both drain the same number of 200-byte persistent messages published
beforehand (not measured). The sidecar's rate is between the first and the
last request the sink saw, so its start-up is excluded; raw's from its first
delivery to its last ack. Each level runs raw, sidecar, raw, sidecar; each
side keeps its faster run. Every message must reach the sink exactly once and
the queues must be empty after: otherwise the script exits 1.
"""
import os
import sys

from benchlib import (Broker, Sidecar, Sink, Tools, args, bench_seconds, fmt, free_port,
                      per_msg_us, progress, table, target, targets_table, tick_note, wait_for)

LEVELS = (1, 16, 64, 256)
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))


class Bench:
    def __init__(self, a):
        self.a = a
        self.broker = Broker(a)
        self.tools = Tools(a.tools, self.broker.url)
        self.sink = Sink(a.tools, a.workdir)
        self.failures = []

    def fill(self, queue, count, passive):
        self.tools.raw("publish", "--queue", queue, "--count", count, "--size", 200,
                       "--window", 512, *(["--passive"] if passive else []))

    def raw(self, prefetch, count):
        queue = f"bench.out.raw{prefetch}"
        self.broker.delete(queue)
        self.fill(queue, count, passive=False)
        before = self.broker.cpu()
        r = self.tools.raw("consume", "--queue", queue, "--count", count, "--prefetch", prefetch)
        r["broker_us"] = per_msg_us(self.broker.cpu() - before, count)
        r["client_us"] = per_msg_us(r["cpu_s"], count)
        left = self.broker.depth(queue)
        if left:
            self.failures.append(f"raw consume, prefetch {prefetch}: {left} left in {queue}")
        self.broker.delete(queue)
        return r

    def raw_http(self, prefetch, count):
        queue = f"bench.out.rawhttp{prefetch}"
        self.broker.delete(queue)
        self.fill(queue, count, passive=False)
        self.sink.reset()
        sink_before, before = self.sink.cpu(), self.broker.cpu()
        r = self.tools.raw_http_out("--queue", queue, "--count", count, "--prefetch", prefetch,
                                    "--target", f"http://127.0.0.1:{self.sink.port}/ingest")
        r["broker_us"] = per_msg_us(self.broker.cpu() - before, count)
        r["client_us"] = per_msg_us(r["cpu_s"], count)
        r["sink_us"] = per_msg_us(self.sink.cpu() - sink_before, count)
        got, left = self.sink.stats()["count"], self.broker.depth(queue)
        if got != count or left:
            self.failures.append(f"raw_http_out, prefetch {prefetch}: {got} of {count} at the "
                                 f"sink, {left} left in {queue}")
        self.broker.delete(queue)
        return r

    def config(self, queue, concurrency):
        admin = free_port()
        path = os.path.join(self.a.workdir, f"bench-out-{concurrency}.conf")
        with open(path, "w") as f:
            f.write(f'''name = "bench";
broker = {{ url = "{self.broker.url}"; }};
admin = {{ listen = "127.0.0.1:{admin}"; }};
outbound = ( {{ name = "out{concurrency}"; kind = "http"; queue = "{queue}";
               url = "http://127.0.0.1:{self.sink.port}/ingest"; concurrency = {concurrency};
               timeout = 30.0; circuit = {{ failures = 0; }}; }} );
''')
        return path, admin

    def sidecar(self, concurrency, count):
        queue = f"bench.out.c{concurrency}"
        owned = [queue, queue + ".dlq", *(f"{queue}.retry.{i}" for i in range(1, 5))]
        self.broker.delete(*owned)
        conf, admin = self.config(queue, concurrency)
        # A first start declares the queues with the route's arguments. A second
        # one, on the empty queue, measures the start-up up to ready (the
        # sidecar's CPU and the broker's), taken off the measured run's.
        Sidecar(self.a.sidecar, conf, admin).stop()
        broker_before = self.broker.cpu()
        sc = Sidecar(self.a.sidecar, conf, admin)
        startup_cpu, startup_broker = sc.cpu(), self.broker.cpu() - broker_before
        sc.stop()
        self.fill(queue, count, passive=True)
        self.sink.reset()
        sink_before, broker_before = self.sink.cpu(), self.broker.cpu()
        sc = Sidecar(self.a.sidecar, conf, admin)
        try:
            wait_for(lambda: self.sink.stats()["count"] >= count, 600,
                     f"{count} requests at the sink", every=0.1)
            wait_for(lambda: self.broker.depth(queue) == 0, 30, f"{queue} to drain")
            sidecar_cpu = sc.cpu() - startup_cpu
            rss = sc.rss()
            stats = self.sink.stats()
            sink_cpu = self.sink.cpu() - sink_before
            broker_cpu = self.broker.cpu() - broker_before - startup_broker
        finally:
            sc.stop()
        got = stats["count"]
        left = sum(self.broker.depth(q) for q in (queue, queue + ".dlq"))
        if got != count or left:
            self.failures.append(f"sidecar, concurrency {concurrency}: {count} queued, {got} "
                                 f"requests at the sink, {left} left in {queue} and its DLQ")
        self.broker.delete(*owned)
        seconds = stats["last"] - stats["first"]
        return {"rate": (got - 1) / seconds if seconds > 0 else 0.0, "rss": rss,
                "sidecar_us": per_msg_us(sidecar_cpu, got), "sink_us": per_msg_us(sink_cpu, got),
                "broker_us": per_msg_us(broker_cpu, got), "startup_ms": startup_cpu * 1e3,
                "startup_broker_ms": startup_broker * 1e3}


def main():
    a = args(__doc__).parse_args()
    count = int(os.environ.get("BENCH_OUT_COUNT", str(int(4000 * bench_seconds()))))
    b = Bench(a)
    rows, startup, startup_broker, ratios = [], [], [], []
    try:
        for c in LEVELS:
            n = count if c > 1 else max(500, count // 4)  # one at a time is slow
            raws, raw_https, ours = [], [], []
            for i in range(REPEAT):
                progress(f"outbound, concurrency/prefetch {c}, run {i + 1}/{REPEAT}: raw")
                raws.append(b.raw(c, n))
                progress(f"outbound, concurrency/prefetch {c}, run {i + 1}/{REPEAT}: raw+curl")
                raw_https.append(b.raw_http(c, n))
                progress(f"outbound, concurrency/prefetch {c}, run {i + 1}/{REPEAT}: sidecar")
                ours.append(b.sidecar(c, n))
            raw = max(raws, key=lambda r: r["rate"])
            raw_http = max(raw_https, key=lambda r: r["rate"])
            best = max(ours, key=lambda r: r["rate"])
            ratios.append((c, best["rate"] / raw["rate"], best["rate"] / raw_http["rate"],
                           max(r["rss"] for r in ours)))
            startup += [r["startup_ms"] for r in ours]
            startup_broker += [r["startup_broker_ms"] for r in ours]
            rows.append([c, n, fmt(raw["rate"]), fmt(raw_http["rate"]), fmt(best["rate"]),
                         fmt(best["rate"] / raw["rate"], 2),
                         fmt(best["rate"] / raw_http["rate"], 2),
                         f"{fmt(raw_http['client_us'], 1)} → {fmt(best['sidecar_us'], 1)}",
                         fmt(best["sink_us"], 1),
                         f"{fmt(raw['broker_us'], 1)} → {fmt(best['broker_us'], 1)}",
                         fmt(raw["client_us"], 1), fmt(max(r["rss"] for r in ours), 1)])
    finally:
        b.sink.stop()

    table(f"Outbound: http route into a local sink beside raw consume+ack (best of {REPEAT})",
          ["concurrency = prefetch", "messages", "raw consume+ack msg/s",
           "raw consume+curl POST+ack msg/s", "sidecar → HTTP msg/s", "ratio to raw",
           "ratio to raw+curl", "client CPU µs/delivery, raw+curl → sidecar",
           "sink CPU µs/request",
           "broker CPU µs/msg, raw → sidecar", "raw client CPU µs/msg", "sidecar peak RSS MB"],
          rows,
          ["raw: `raw_amqp consume --prefetch N`, acking each delivery; no HTTP. raw+curl: "
           "`raw_http_out --prefetch N`, the same consume with each delivery POSTed to the same "
           "sink by libcurl's multi interface (N transfers at once, keep-alive, easy handles "
           "reused), acked on the answer — the sidecar's two libraries and nothing else. "
           "sidecar: the "
           "http outbound route at `concurrency = N` posting each message to `tests/bench/sink` "
           "(2 libmicrohttpd threads, answers 200 `{}`) and acking on the answer.",
           "CPU µs: utime+stime of the whole process (every thread, user and kernel) from "
           "/proc/PID/stat, per message. The sidecar's covers consuming, the HTTP call "
           "(libcurl) and the ack, from its start to the drained queue, less its start-up "
           f"(CPU to ready on the empty queue, {min(startup):.0f}–{max(startup):.0f} ms, "
           "measured in a start just before). The sink's is its own cost of answering (and "
           "~10 /stats polls a second), shown so it can be taken off. The broker's: all of "
           "beam.smp over the drain (raw: its consume; sidecar: start to drained, less the "
           f"broker's CPU during that start-up, {min(startup_broker):.0f}–"
           f"{max(startup_broker):.0f} ms). Raw client: its getrusage, connection setup "
           "included. "
           + tick_note(min(count, max(500, count // 4))),
           "Each row: raw, raw+curl, sidecar, twice; each shows its faster run. The "
           "messages are published before each run (not measured); the sidecar's rate is "
           "between the first and the last request the sink saw. Peak RSS: the larger VmHWM "
           "of the row's two sidecar runs.",
           "checked: every message reached the sink exactly once, no queue or DLQ left "
           "non-empty" + (" — **FAILED**, see below." if b.failures else ".")])
    targets_table("Outbound targets, this run", [
        target("sidecar ÷ raw consume+ack ≥ 0.8", [(c, r, 0.8, True) for c, r, _, _ in ratios]),
        target("sidecar ÷ raw consume+curl POST+ack ≥ 0.8 (the yardstick with the HTTP call)",
               [(c, r, 0.8, True) for c, _, r, _ in ratios]),
        target("sidecar peak RSS ≤ 20 MB", [(c, m, 20.0, False) for c, _, _, m in ratios], 1),
    ], ["By concurrency = prefetch, from the table above. Raw consume+ack makes no HTTP call: "
        "the gap to it is the cost of one HTTP exchange per delivery (libcurl and the sink), "
        "which raw+curl pays too."])
    if b.failures:
        print("**ERROR**: " + "; ".join(b.failures) + "\n", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
