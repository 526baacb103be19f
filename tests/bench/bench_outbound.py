"""Outbound HTTP benchmark: the sidecar drains N queued messages into a fast
local HTTP sink (tests/bench/sink.c, libmicrohttpd, answers 200) at
concurrency 1, 8 and 64, each printed beside `raw_amqp consume` with the same
prefetch on the same broker in the same run (the AMQP-only limit: consume and
ack, no HTTP at all). Rates are messages per second between the first and the
last request the sink saw (the sidecar's start-up excluded); each level runs
twice, interleaved with the raw run, and the best of each is kept, so a burst
of load from elsewhere on the host does not decide the ratio. CPU µs/msg (user
+ system time per message) is printed too: it does not depend on that load.
Peak RSS is the sidecar's VmHWM. Measures and prints only.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

import resource

import pika
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
LEVELS = (1, 8, 64)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Bench:
    def __init__(self, a):
        self.a = a
        self.url = f"amqp://guest:guest@127.0.0.1:{a.amqp_port}/%2f"

    def channel(self):
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.a.amqp_port))
        return conn, conn.channel()

    def delete_queues(self, *names):
        for name in names:
            conn, ch = self.channel()
            try:
                ch.queue_delete(name)
            except pika.exceptions.ChannelClosedByBroker:
                pass
            finally:
                if conn.is_open:
                    conn.close()

    def depth(self, queue):
        conn, ch = self.channel()
        try:
            return ch.queue_declare(queue, passive=True).method.message_count
        finally:
            conn.close()

    def raw(self, *args):
        out = subprocess.run([self.a.raw, *args, "--url", self.url], capture_output=True,
                             text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"raw_amqp {' '.join(args)}: {out.stderr.strip()}")
        return json.loads(out.stdout)

    # ---- the sink ----------------------------------------------------------------
    def start_sink(self):
        binary = os.path.join(self.a.workdir, "bench-sink")
        subprocess.run(["cc", "-O2", "-o", binary, os.path.join(HERE, "sink.c"),
                        "-lmicrohttpd"], check=True)
        self.sink_port = free_port()
        self.sink = subprocess.Popen([binary, str(self.sink_port), "2"])
        wait_for(lambda: self.sink_stats() is not None, 5, "the sink")

    def sink_stats(self):
        try:
            return requests.get(f"http://127.0.0.1:{self.sink_port}/stats", timeout=2).json()
        except requests.RequestException:
            return None

    # ---- one sidecar run -------------------------------------------------------------
    def config(self, queue, concurrency, admin):
        path = os.path.join(self.a.workdir, f"bench-out-{concurrency}.conf")
        with open(path, "w") as f:
            f.write(f'''name = "bench";
broker = {{ url = "{self.url}"; }};
admin = {{ listen = "127.0.0.1:{admin}"; }};
outbound = ( {{ name = "out{concurrency}"; kind = "http"; queue = "{queue}";
               url = "http://127.0.0.1:{self.sink_port}/ingest"; concurrency = {concurrency};
               timeout = 30.0; circuit = {{ failures = 0; }}; }} );
''')
        return path, admin

    def sidecar(self, conf, admin):
        log = open(conf + ".log", "a")
        proc = subprocess.Popen([self.a.sidecar, "run", "-c", conf], stderr=log)

        def ready():
            if proc.poll() is not None:
                raise RuntimeError(f"sidecar exited {proc.returncode}; see {conf}.log")
            try:
                return requests.get(f"http://127.0.0.1:{admin}/readyz", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_for(ready, 20, "sidecar ready")
        return proc

    def stop(self, proc):
        proc.terminate()
        proc.wait(60)

    def run_level(self, concurrency, count):
        queue = f"bench.out.c{concurrency}"
        self.delete_queues(queue, queue + ".dlq", *(f"{queue}.retry.{i}" for i in range(1, 5)))
        conf, admin = self.config(queue, concurrency, free_port())
        self.stop(self.sidecar(conf, admin))  # declares the queue with its arguments
        self.raw("publish", "--queue", queue, "--count", str(count), "--size", "200",
                 "--window", "512", "--passive")
        requests.post(f"http://127.0.0.1:{self.sink_port}/reset", timeout=2)
        before = self.sink_stats()["count"]
        proc = self.sidecar(conf, admin)
        try:
            wait_for(lambda: self.sink_stats()["count"] - before >= count, 300,
                     f"{count} requests at the sink")
            wait_for(lambda: self.depth(queue) == 0, 30, "the queue to drain")
            rss = peak_rss_mb(proc.pid)
            cpu = cpu_seconds(proc.pid)
            stats = self.sink_stats()
        finally:
            self.stop(proc)
        got = stats["count"] - before
        seconds = stats["last"] - stats["first"]
        left = self.depth(queue) + self.depth(queue + ".dlq")
        self.delete_queues(queue, queue + ".dlq", *(f"{queue}.retry.{i}" for i in range(1, 5)))
        return {"rate": (got - 1) / seconds if seconds > 0 else 0, "count": got, "rss": rss,
                "left": left, "cpu_us": cpu * 1e6 / got}

    def raw_consume(self, prefetch, count):
        queue = f"bench.out.raw{prefetch}"
        self.delete_queues(queue)
        self.raw("publish", "--queue", queue, "--count", str(count), "--size", "200",
                 "--window", "512")
        before = children_cpu()
        r = self.raw("consume", "--queue", queue, "--count", str(count), "--prefetch",
                     str(prefetch))
        r["cpu_us"] = (children_cpu() - before) * 1e6 / count
        self.delete_queues(queue)
        return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--amqp-port", type=int, required=True)
    ap.add_argument("--rabbitmqctl", default="")
    ap.add_argument("--sidecar", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--count", type=int, default=int(os.environ.get("BENCH_OUT_COUNT", "20000")))
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_OUT_REPEAT", "2")))
    a, _ = ap.parse_known_args()
    b = Bench(a)
    b.start_sink()
    try:
        rows = []
        for c in LEVELS:
            n = a.count if c > 1 else max(1000, a.count // 4)  # one at a time is slow
            raws, ours = [], []
            for _ in range(max(1, a.repeat)):
                raws.append(b.raw_consume(c, n))
                ours.append(b.run_level(c, n))
            best = max(ours, key=lambda r: r["rate"])
            best["rss"] = max(r["rss"] for r in ours)
            best["cpu_us"] = min(r["cpu_us"] for r in ours)
            best["left"] = sum(r["left"] for r in ours)
            best["count"] = min(r["count"] for r in ours)
            raw = max(raws, key=lambda r: r["rate"])
            raw["cpu_us"] = min(r["cpu_us"] for r in raws)
            rows.append((c, n, raw, best))
    finally:
        b.sink.terminate()
        b.sink.wait(10)

    print(f"  {'(best of ' + str(a.repeat) + ')':<36} {'msgs':>6} {'raw consume':>12} "
          f"{'sidecar → HTTP':>15} {'ratio':>6}  {'CPU µs/msg raw/sidecar':>22}  peak RSS")
    for c, n, raw, ours in rows:
        print(f"  {'http out, concurrency/prefetch ' + str(c):<36} {n:>6} {raw['rate']:>8.0f} /s"
              f" {ours['rate']:>11.0f} /s {ours['rate'] / raw['rate']:>5.2f}x"
              f"  {raw['cpu_us']:>13.1f} / {ours['cpu_us']:<6.1f}  {ours['rss']:.1f} MB")
    best = max(rows, key=lambda r: r[3]["rate"])
    best_raw = max(r[2]["rate"] for r in rows)
    print(f"  best: concurrency {best[0]} at {best[3]['rate']:.0f} msg/s = "
          f"{best[3]['rate'] / best[2]['rate']:.2f}x raw consume at the same prefetch, "
          f"{best[3]['rate'] / best_raw:.2f}x the fastest raw consume (target >= 0.7x)")
    bad = [(c, ours) for c, n, _, ours in rows if ours["count"] < n or ours["left"]]
    if bad:
        print(f"  ERROR: incomplete runs: {bad}")
        sys.exit(1)


if __name__ == "__main__":
    main()
