"""Spool: an http route with a spool, at 16 and 64 connections, three ways on
one sidecar process and one private broker:

confirmed   the broker takes publishes: 202 after the broker's confirm (the
            spool is empty and stays so);
spooled     the broker blocks publishing (a memory alarm set with
            set_vm_memory_high_watermark): 202 after the journal's group
            fdatasync, nothing reaches the broker;
forwarding  the alarm is lifted: the forwarder publishes the journal in order,
            with confirms, at most half of broker.max_inflight in flight; timed
            from the rabbitmqctl call lifting the alarm until the queue holds
            every spooled message and the spool is empty.

Every 202 must be in the queue afterwards (spooled ones too), and the spool
metrics must count exactly what loadgen was answered: otherwise exit 1.
"""
import os
import re
import sys
import time

import requests

from benchlib import (BODY, Broker, Sidecar, Tools, args, bench_seconds, fmt, free_port,
                      per_msg_us, progress, table, tick_note, wait_for)

QUEUE, EXCHANGE, KEY = "bench.spool", "amq.direct", "bench.spool"
LEVELS = (16, 64)


def write_config(a, url, spool_dir):
    port, admin = free_port(), free_port()
    conf = os.path.join(a.workdir, "bench-spool.conf")
    with open(conf, "w") as f:
        # confirm_timeout = 1: the request whose publish meets the alarm waits that long
        # before it is spooled; every later one is spooled at once.
        f.write(f'''name = "bench";
broker = {{ url = "{url}"; confirm_timeout = 1; }};
admin = {{ listen = "127.0.0.1:{admin}"; }};
http = {{ max_connections_per_ip = 0; }};
inbound = ( {{ name = "bench"; kind = "http"; listen = "127.0.0.1:{port}"; path = "/in";
              exchange = "{EXCHANGE}"; routing_key = "{KEY}";
              spool = {{ dir = "{spool_dir}"; }}; }} );
''')
    return conf, admin, f"http://127.0.0.1:{port}/in"


def fs_type(path):
    """The type of the filesystem holding path, from the longest mount point above it."""
    path, best = os.path.realpath(path), ("", "an unknown filesystem")
    with open("/proc/self/mounts") as f:
        for line in f:
            _, point, kind = line.split()[:3]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and \
                    len(point) > len(best[0]):
                best = (point, kind)
    return f"{best[1]} (mounted on {best[0]})"


class SpoolBench:
    def __init__(self, a):
        self.a = a
        self.broker = Broker(a)
        self.tools = Tools(a.tools, self.broker.url)
        self.seconds = bench_seconds()
        self.body = os.path.join(a.workdir, "spool-body.json")
        with open(self.body, "w") as f:
            f.write(BODY)
        self.spool_dir = os.path.join(a.workdir, "spool")
        os.makedirs(self.spool_dir, exist_ok=True)
        self.failures = []

    def metric(self, name):
        text = requests.get(f"http://127.0.0.1:{self.admin}/metrics", timeout=5).text
        m = re.search(rf"^amqp_sidecar_{name}{{[^}}]*}} (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    def load(self, n):
        before = self.broker.cpu(), self.sc.cpu()
        r = self.tools.loadgen(self.url, n, self.seconds, self.body,
                               ["Content-Type: application/json"])
        r["broker_s"] = self.broker.cpu() - before[0]
        r["sidecar_s"] = self.sc.cpu() - before[1]
        r["rate"] = r["ok"] / r["seconds"] if r["seconds"] else 0.0
        if r["ok"] == 0:
            self.failures.append(f"{n} connections: no 2xx answer ({r['non2xx']} non-2xx)")
        return r

    def confirmed(self, n):
        self.broker.purge(QUEUE)
        spooled = self.metric("spooled_total")
        r = self.load(n)
        depth = self.broker.depth(QUEUE)
        if depth < r["ok"] or depth > r["ok"] + r["errors"]:
            self.failures.append(f"confirmed, {n} connections: {r['ok']} × 202, {depth} queued")
        if self.metric("spooled_total") != spooled:
            self.failures.append(f"confirmed, {n} connections: requests were spooled")
        return r

    def block(self):
        self.broker.ctl_run("set_vm_memory_high_watermark", "0.000001")
        log = self.conf + ".log"
        # The alarm blocks a connection at its next publish: one request meets it.
        requests.post(self.url, data=BODY, headers={"Content-Type": "application/json"},
                      timeout=30)
        wait_for(lambda: "broker blocked publishing" in open(log).read(), 30,
                 "the sidecar to see the broker blocking")

    def spooled_then_forwarded(self, n):
        self.broker.purge(QUEUE)
        self.block()
        first = self.metric("spooled_total")  # the probe request above is in it
        r = self.load(n)
        spooled = self.metric("spooled_total") - first
        if spooled != r["ok"]:
            self.failures.append(f"spooled, {n} connections: {r['ok']} × 202 but {spooled:.0f} "
                                 "spooled")
        want = self.metric("spool_messages")
        spool_bytes = self.metric("spool_bytes")
        cpu = self.broker.cpu(), self.sc.cpu()
        t0 = time.monotonic()
        self.broker.ctl_run("set_vm_memory_high_watermark", "0.4")
        wait_for(lambda: self.broker.depth(QUEUE) >= want and self.metric("spool_messages") == 0,
                 120, "the spool to drain", every=0.02)
        took = time.monotonic() - t0
        f = {"count": want, "seconds": took, "rate": want / took if took else 0.0,
             "broker_s": self.broker.cpu() - cpu[0], "sidecar_s": self.sc.cpu() - cpu[1],
             "bytes": spool_bytes}
        depth = self.broker.depth(QUEUE)
        if depth < want:
            self.failures.append(f"forwarding, {n} connections: {want:.0f} spooled, {depth} "
                                 "queued")
        return r, f

    def run(self):
        self.broker.declare(QUEUE, bind=(EXCHANGE, KEY))
        self.conf, self.admin, self.url = write_config(self.a, self.broker.url, self.spool_dir)
        self.sc = Sidecar(self.a.sidecar, self.conf, self.admin)
        rows, fewest = [], 1 << 62
        try:
            for n in LEVELS:
                progress(f"spool, {n} connections: confirmed")
                c = self.confirmed(n)
                progress(f"spool, {n} connections: spooled, then forwarded")
                s, f = self.spooled_then_forwarded(n)
                fewest = min(fewest, c["ok"], s["ok"], int(f["count"]))
                rows.append([n, fmt(c["rate"]), fmt(s["rate"]), fmt(f["rate"]),
                             f"{fmt(c['p50_ms'], 2)} / {fmt(c['p99_ms'], 2)}",
                             f"{fmt(s['p50_ms'], 2)} / {fmt(s['p99_ms'], 2)}",
                             f"{fmt(per_msg_us(c['sidecar_s'], c['ok']), 1)} / "
                             f"{fmt(per_msg_us(s['sidecar_s'], s['ok']), 1)} / "
                             f"{fmt(per_msg_us(f['sidecar_s'], f['count']), 1)}",
                             fmt(f["bytes"] / f["count"] if f["count"] else None),
                             f"{f['count']:.0f} in {f['seconds']:.2f} s"])
            rss = self.sc.rss()
        finally:
            self.broker.ctl_run("set_vm_memory_high_watermark", "0.4")
            self.sc.stop()
        s = f"{self.seconds:g}"
        table(f"Spool: http route with a spool, 200-byte JSON ({s} s runs)",
              ["connections", "confirmed req/s", "spooled req/s", "forwarded msg/s",
               "confirmed p50 / p99 ms", "spooled p50 / p99 ms",
               "sidecar CPU µs/msg confirmed / spooled / forwarded", "journal bytes/msg",
               "forwarded"], rows,
              [
                  "confirmed: the broker takes publishes (202 after its confirm). spooled: the "
                  "broker blocks publishing (memory alarm); 202 after the journal record's "
                  "group fdatasync. forwarded: from lifting the alarm until every spooled "
                  "message is in the queue and the spool is empty (the forwarder keeps at "
                  "most half of `broker.max_inflight` in flight, confirmed).",
                  f"The spool directory is on {fs_type(self.spool_dir)}; fdatasync's cost "
                  "depends on the disk, so the spooled rate does too.",
                  f"Sidecar peak RSS over the section: {rss:.1f} MB. " + tick_note(fewest),
              ])
        if self.failures:
            print("**ERROR**: " + "; ".join(self.failures) + "\n", flush=True)
            sys.exit(1)


def main():
    SpoolBench(args(__doc__).parse_args()).run()


if __name__ == "__main__":
    main()
