"""Inbound matrix: the sidecar's http route beside raw rabbitmq-c, at 1, 16, 64,
256 and 512 messages in flight, on one private broker.

raw: `raw_amqp publish --sidecar-props` (the sidecar's message shape) to the
route's own exchange and routing key, exactly N publishes awaiting confirms.
sidecar: the http route (202 only after the confirm) under tests/bench/loadgen
with N keep-alive connections, closed loop, so N requests are in flight.
Each level runs raw, sidecar, raw, sidecar on one sidecar process started for
the level; each side keeps its faster run. Every 202 must be in the queue
(and every raw confirm): otherwise the script exits 1.

Then, at 16 and 64 in flight, both open loop at half the lower of the two
saturating rates, for the p99 comparison (inbound_openloop.py).
"""
import os
import sys
import time

import inbound_openloop
from benchlib import (BODY, Broker, Sidecar, Tools, args, bench_seconds, fmt, free_port,
                      per_msg_us, progress, table, target, targets_table, tick_note)

LEVELS = (1, 16, 64, 256, 512)
QUEUE, EXCHANGE, KEY = "bench.in", "amq.direct", "bench.in"
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))


def write_config(a, url):
    port, admin = free_port(), free_port()
    conf = os.path.join(a.workdir, "bench-inbound.conf")
    with open(conf, "w") as f:
        # max_connections_per_ip = 0: every loadgen connection comes from 127.0.0.1.
        f.write(f'''name = "bench";
broker = {{ url = "{url}"; }};
admin = {{ listen = "127.0.0.1:{admin}"; }};
http = {{ max_connections_per_ip = 0; }};
inbound = ( {{ name = "bench"; kind = "http"; listen = "127.0.0.1:{port}"; path = "/in";
              exchange = "{EXCHANGE}"; routing_key = "{KEY}"; }} );
''')
    return conf, admin, f"http://127.0.0.1:{port}/in"


class Matrix:
    def __init__(self, a):
        self.a = a
        self.broker = Broker(a)
        self.tools = Tools(a.tools, self.broker.url)
        self.seconds = bench_seconds()
        self.body = os.path.join(a.workdir, "inbound-body.json")
        with open(self.body, "w") as f:
            f.write(BODY)
        self.failures = []
        self.queue, self.exchange, self.key = QUEUE, EXCHANGE, KEY

    def check(self, what, depth, want, slack=0):
        """depth messages in the queue where want were confirmed (and at most
        slack more may have been published without an answer)."""
        if depth < want:
            self.failures.append(f"{what}: {want} confirmed but {depth} in {QUEUE}")
        elif depth > want + slack:
            self.failures.append(f"{what}: {depth} in {QUEUE}, only {want} confirmed")

    def raw(self, n):
        self.broker.purge(QUEUE)
        before = self.broker.cpu()
        r = self.tools.raw("publish", "--queue", QUEUE, "--passive", "--exchange", EXCHANGE,
                           "--routing-key", KEY, "--seconds", self.seconds, "--size", len(BODY),
                           "--window", n, "--sidecar-props")
        broker_cpu = self.broker.cpu() - before
        depth = self.broker.depth(QUEUE)
        self.check(f"raw, {n} in flight", depth, r["count"])
        r.update(broker_us=per_msg_us(broker_cpu, depth),
                 client_us=per_msg_us(r["cpu_s"], r["count"]))
        return r

    def sidecar(self, sc, url, n):
        self.broker.purge(QUEUE)
        broker_before, sidecar_before = self.broker.cpu(), sc.cpu()
        r = self.tools.loadgen(url, n, self.seconds, self.body,
                               ["Content-Type: application/json"])
        broker_cpu, sidecar_cpu = self.broker.cpu() - broker_before, sc.cpu() - sidecar_before
        depth = self.broker.depth(QUEUE)
        self.check(f"sidecar, {n} connections", depth, r["ok"], slack=r["errors"])
        if r["ok"] == 0:
            self.failures.append(f"sidecar, {n} connections: no 2xx answer ({r['non2xx']} "
                                 f"non-2xx, {r['errors']} connections lost)")
        r.update(rate=r["ok"] / r["seconds"] if r["seconds"] else 0.0, depth=depth,
                 broker_us=per_msg_us(broker_cpu, depth),
                 sidecar_us=per_msg_us(sidecar_cpu, depth),
                 client_us=per_msg_us(r["cpu_s"], r["requests"]))
        return r

    def level(self, n):
        conf, admin, url = write_config(self.a, self.broker.url)
        sc = Sidecar(self.a.sidecar, conf, admin)
        raws, ours = [], []
        try:
            for i in range(REPEAT):
                progress(f"inbound, {n} in flight, run {i + 1}/{REPEAT}: raw")
                raws.append(self.raw(n))
                progress(f"inbound, {n} in flight, run {i + 1}/{REPEAT}: sidecar")
                ours.append(self.sidecar(sc, url, n))
            rss = sc.rss()
        finally:
            sc.stop()
        raw = max(raws, key=lambda r: r["rate"])
        best = max(ours, key=lambda r: r["rate"])
        best["rss"] = rss
        best["answered"] = sum(r["ok"] for r in ours)
        best["queued"] = sum(r["depth"] for r in ours)
        best["non2xx_all"] = sum(r["non2xx"] for r in ours)
        best["errors_all"] = sum(r["errors"] for r in ours)
        return raw, best

    def management_api(self):
        """RabbitMQ's own HTTP publish API at 64 connections, for scale."""
        import json
        payload = os.path.join(self.a.workdir, "mgmt-body.json")
        with open(payload, "w") as f:
            json.dump({"properties": {"delivery_mode": 2, "content_type": "application/json"},
                       "routing_key": KEY, "payload": BODY, "payload_encoding": "string"}, f)
        self.broker.purge(QUEUE)
        progress("inbound: RabbitMQ management HTTP publish API, 64 connections")
        return self.tools.loadgen(
            f"http://127.0.0.1:{self.a.mgmt_port}/api/exchanges/%2f/{EXCHANGE}/publish", 64,
            self.seconds, payload,
            ["Content-Type: application/json", "Authorization: Basic Z3Vlc3Q6Z3Vlc3Q="])


def print_targets(closed):
    """Issue #12's inbound targets against this run's closed-loop rows."""
    def each(value, limit, at_least=True):
        return [(n, value(raw, ours), limit(n) if callable(limit) else limit, at_least)
                for n, (raw, ours) in closed.items()]
    targets_table("Inbound targets, this run", [
        target("sidecar ÷ raw rate ≥ 0.9 (≥ 0.8 at 512)",
               each(lambda raw, ours: ours["rate"] / raw["rate"],
                    lambda n: 0.8 if n >= 512 else 0.9)),
        target("broker CPU/msg fed by the sidecar ÷ fed by raw ≤ 1.10",
               each(lambda raw, ours: ours["broker_us"] / raw["broker_us"], 1.10, False)),
        target("sidecar CPU/msg ÷ broker CPU/msg ≤ 0.25",
               each(lambda raw, ours: ours["sidecar_us"] / ours["broker_us"], 0.25, False)),
        target("sidecar peak RSS ≤ 20 MB", each(lambda raw, ours: ours["rss"], 20.0, False), 1),
    ], ["By in-flight level, from the table above. The p99 target is in the open-loop table "
        "below."])


def main():
    a = args(__doc__).parse_args()
    m = Matrix(a)
    m.broker.declare(QUEUE, bind=(EXCHANGE, KEY))
    before = m.broker.cpu()
    time.sleep(2)
    idle_ms = (m.broker.cpu() - before) * 1000 / 2

    rows, checks, fewest, closed = [], [], 1 << 62, {}
    for n in LEVELS:
        raw, ours = m.level(n)
        closed[n] = (raw, ours)
        fewest = min(fewest, raw["count"], ours["depth"])
        rows.append([n, fmt(raw["rate"]), fmt(ours["rate"]), fmt(ours["rate"] / raw["rate"], 2),
                     f"{fmt(raw['p50_ms'], 2)} / {fmt(raw['p99_ms'], 2)}",
                     f"{fmt(ours['p50_ms'], 2)} / {fmt(ours['p99_ms'], 2)}",
                     fmt(ours["sidecar_us"], 1),
                     f"{fmt(raw['broker_us'], 1)} → {fmt(ours['broker_us'], 1)}",
                     f"{fmt(raw['client_us'], 1)} / {fmt(ours['client_us'], 1)}",
                     fmt(ours["rss"], 1)])
        checks.append(f"{n}: {ours['answered']} × 2xx, {ours['queued']} queued, "
                      f"{ours['non2xx_all']} non-2xx, {ours['errors_all']} lost")
    mgmt = m.management_api() if a.mgmt_port else None

    s = f"{m.seconds:g}"
    notes = [
        f"raw: `raw_amqp publish --sidecar-props` to `{EXCHANGE}` with key `{KEY}` (the route's "
        "exchange and key, bound to one durable queue), exactly *in flight* publishes awaiting "
        "confirms; p50/p99 from each publish to its confirm.",
        "sidecar: the http route (`202` only after the confirm) under `tests/bench/loadgen` "
        "with *in flight* keep-alive connections, each sending its next POST when its answer is "
        "in; req/s counts 2xx answers; p50/p99 from request written to answer read.",
        "CPU µs/msg: utime+stime of the whole process (every thread, user and kernel) from "
        "/proc/PID/stat (raw client and loadgen: their own getrusage, connection setup "
        "included) over the run, divided by the messages that reached the queue. The sidecar's "
        "covers HTTP parsing, publishing, confirms and answering. The broker's is all of "
        f"beam.smp, including background work: idle, it used {idle_ms:.0f} ms of CPU per second "
        "(management plugin on; ±5 ms/s, read over 2 s). " + tick_note(fewest),
        f"Each row: raw, sidecar, raw, sidecar, {s} s each on one sidecar process; each side "
        "shows its faster run (every figure of that side from that run). Peak RSS: the "
        "sidecar's VmHWM after the row's runs. The queue is purged before every run.",
        "checked, per row (both runs): " + "; ".join(checks) + ".",
    ]
    if mgmt:
        ours64 = next(r for r in rows if r[0] == 64)
        notes.append(f"RabbitMQ's management HTTP publish API under the same loadgen at 64 "
                     f"connections: {fmt(mgmt['ok'] / mgmt['seconds'])} req/s, p50 "
                     f"{fmt(mgmt['p50_ms'], 2)} ms, p99 {fmt(mgmt['p99_ms'], 2)} ms "
                     f"(the sidecar at 64: {ours64[2]} req/s).")
    table(f"Inbound: http route beside raw rabbitmq-c, 200-byte JSON ({s} s runs, best of "
          f"{REPEAT})",
          ["in flight", "raw msg/s", "sidecar req/s", "ratio", "raw p50 / p99 ms",
           "sidecar p50 / p99 ms", "sidecar CPU µs/msg", "broker CPU µs/msg, raw → sidecar",
           "CPU µs/msg raw client / loadgen", "sidecar peak RSS MB"], rows, notes)
    print_targets(closed)
    inbound_openloop.run(m, closed, REPEAT, write_config)
    if m.failures:
        print("**ERROR**: " + "; ".join(m.failures) + "\n", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
