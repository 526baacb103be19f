#!/usr/bin/python3
"""make soak — a long run of mixed load with the broker restarted every few
minutes, to show what no short test can: that memory, descriptors and threads
stay flat, and that nothing is lost across many reconnects. Not part of
`make test` (it takes SOAK_MINUTES, 30 by default).

One private RabbitMQ, one release-build sidecar with three routes:
  orders    http inbound   4 clients POST with Idempotency-Keys
  invoices  file inbound   a 50-row CSV dropped every 2 s
  legacy    http outbound  a producer publishes to its queue; a local sink answers 200
Every SOAK_RESTART seconds (180) the broker is stopped cleanly for 5 s and started.
Consumers drain the sinks all along (reconnecting after each restart).

At the end it prints the sidecar's RSS, open descriptors and threads at the start
(after a minute of warm-up) and at the end, a sample per restart, and the loss
count for each flow: 202s missing from the orders queue, CSV rows missing from the
invoices queue, confirmed publishes that neither reached the sink nor its DLQ.
Exit 1 if anything was lost."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e"))

import pika  # noqa: E402
import requests  # noqa: E402

from conftest import ROOT, Broker, free_port, wait_for  # noqa: E402
from http_poll_helpers import LegacyServer  # noqa: E402

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
RESTART = float(os.environ.get("SOAK_RESTART", "180"))
BINARY = os.environ.get("SIDECAR_BIN", os.path.join(ROOT, "build", "amqp-sidecar"))


def say(text):
    print(time.strftime("%H:%M:%S ") + text, flush=True)


def proc_sample(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024,
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": int(status["Threads"])}


def amqp(broker):
    """A blocking connection, retried while the broker is away."""
    while True:
        try:
            return pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", broker.port, heartbeat=0, connection_attempts=1))
        except pika.exceptions.AMQPError:
            time.sleep(0.5)


class Soak:
    def __init__(self, work):
        self.work = work
        self.broker = Broker(work, name="soak")
        self.legacy = LegacyServer()
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.accepted, self.refused = set(), 0
        self.rows_dropped, self.published = set(), set()
        self.seen = {"orders": set(), "invoices": set(), "dlq": set()}
        self.drop = os.path.join(work, "drop")
        for d in ("drop", "done", "failed"):
            os.makedirs(os.path.join(work, d))

    def config(self, port, admin):
        return f"""
name = "soak";
broker = {{ url = "{self.broker.url}"; heartbeat = 5; }};
admin = {{ listen = "127.0.0.1:{admin}"; }};
inbound = (
  {{ name = "orders"; kind = "http"; listen = "127.0.0.1:{port}"; path = "/orders";
     exchange = "soak.events"; routing_key = "order.created"; }},
  {{ name = "invoices"; kind = "file"; dir = "{self.drop}"; format = "csv"; settle_ms = 200;
     scan_interval = 1; done_dir = "{self.work}/done"; failed_dir = "{self.work}/failed";
     exchange = "soak.events"; routing_key = "invoice.row"; }}
);
outbound = (
  {{ name = "legacy"; kind = "http"; url = "{self.legacy.url('/in')}"; concurrency = 8;
     retry = {{ delays = [1, 2]; }}; circuit = {{ failures = 0; }}; }}
);
"""

    def setup(self):
        self.broker.start()
        with self.broker.channel() as ch:
            ch.exchange_declare("soak.events", "topic", durable=True)
            for q, key in (("soak.orders.sink", "order.#"), ("soak.invoices.sink", "invoice.#")):
                ch.queue_declare(q, durable=True)
                ch.queue_bind(q, "soak.events", key)
        self.port, admin = free_port(), free_port()
        conf = os.path.join(self.work, "soak.conf")
        with open(conf, "w") as f:
            f.write(self.config(self.port, admin))
        self.log = open(os.path.join(self.work, "sidecar.log"), "w")
        self.proc = subprocess.Popen([BINARY, "run", "-c", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.admin = f"http://127.0.0.1:{admin}"
        wait_for(lambda: self.ready(), 30, what="the sidecar ready")

    def ready(self):
        try:
            return requests.get(self.admin + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    # ---- load ------------------------------------------------------------------------
    def client(self, n):
        session = requests.Session()
        i = 0
        while not self.halt.is_set():
            key = f"c{n}-{i}"
            i += 1
            try:
                r = session.post(f"http://127.0.0.1:{self.port}/orders", timeout=60,
                                 data=json.dumps({"k": key}),
                                 headers={"Content-Type": "application/json",
                                          "Idempotency-Key": key})
                ok = r.status_code == 202
            except requests.RequestException:
                ok = False
            with self.lock:
                if ok:
                    self.accepted.add(key)
                else:
                    self.refused += 1
            time.sleep(0.01 if ok else 0.2)

    def dropper(self):
        n = 0
        while not self.halt.is_set():
            rows = [f"f{n}-{i}" for i in range(50)]
            tmp = os.path.join(self.drop, f".f{n}.part")
            with open(tmp, "w") as f:
                f.write("id,amount\n" + "".join(f"{r},{i}\n" for i, r in enumerate(rows)))
            os.rename(tmp, os.path.join(self.drop, f"f{n}.csv"))
            with self.lock:
                self.rows_dropped.update(rows)
            n += 1
            self.halt.wait(2)

    def producer(self):
        i = 0
        while not self.halt.is_set():
            conn = amqp(self.broker)
            try:
                ch = conn.channel()
                ch.confirm_delivery()
                while not self.halt.is_set():
                    mid = f"out-{i}"
                    ch.basic_publish("", "soak.legacy", json.dumps({"n": i}).encode(),
                                     pika.BasicProperties(delivery_mode=2, message_id=mid),
                                     mandatory=True)
                    with self.lock:
                        self.published.add(mid)  # confirmed: basic_publish returned
                    i += 1
                    time.sleep(0.02)
            except pika.exceptions.AMQPError:
                i += 1  # that one may or may not have been confirmed: not counted
            finally:
                try:
                    conn.close()
                except Exception:
                    pass

    def drainer(self, queue, into, field):
        while True:
            conn = amqp(self.broker)
            try:
                ch = conn.channel()
                ch.basic_qos(prefetch_count=500)
                # Acked after it is counted: with auto-ack, what the broker had sent when it
                # stopped would be lost to this count, not by the sidecar.
                for method, props, body in ch.consume(queue, inactivity_timeout=1):
                    if body is not None:
                        value = props.message_id if field is None else json.loads(body)[field]
                        with self.lock:
                            into.add(value)
                        ch.basic_ack(method.delivery_tag)
                    elif self.halt.is_set() and self.drained.is_set():
                        return
            except (pika.exceptions.AMQPError, ConnectionError):
                time.sleep(0.5)
            finally:
                try:
                    conn.close()
                except Exception:
                    pass

    # ---- the run ---------------------------------------------------------------------
    def run(self):
        self.setup()
        self.drained = threading.Event()
        workers = [threading.Thread(target=self.client, args=(n,)) for n in range(4)]
        workers += [threading.Thread(target=self.dropper), threading.Thread(target=self.producer)]
        drainers = [threading.Thread(target=self.drainer, args=a) for a in (
            ("soak.orders.sink", self.seen["orders"], "k"),
            ("soak.invoices.sink", self.seen["invoices"], "id"),
            ("soak.legacy.dlq", self.seen["dlq"], None))]
        for t in workers + drainers:
            t.daemon = True
            t.start()
        say(f"soak: {MINUTES:g} min, a broker restart every {RESTART:g} s; log in {self.work}")
        time.sleep(min(60, MINUTES * 60 / 4))
        samples = [("start", proc_sample(self.proc.pid))]
        end = time.monotonic() + MINUTES * 60 - min(60, MINUTES * 60 / 4)
        restarts = 0
        while time.monotonic() < end:
            time.sleep(max(0, min(RESTART, end - time.monotonic())))
            if time.monotonic() >= end:
                break
            self.broker.stop()
            time.sleep(5)
            self.broker.start()
            restarts += 1
            wait_for(self.ready, 60, what="the sidecar ready after the broker restart")
            samples.append((f"restart {restarts}", proc_sample(self.proc.pid)))
            say(f"restart {restarts}: {samples[-1][1]}; 202s {len(self.accepted)}")
        self.halt.set()
        for t in workers:
            t.join(90)
        # Let the sidecar finish what it holds, then the drainers what is queued.
        wait_for(lambda: not self.files_left(), 120, what="every dropped file processed")
        wait_for(lambda: self.queue_empty("soak.legacy"), 120, what="the outbound queue drained")
        time.sleep(3)
        samples.append(("end", proc_sample(self.proc.pid)))
        self.drained.set()
        for t in drainers:
            t.join(30)
        return restarts, samples

    def files_left(self):
        processing = os.path.join(self.drop, ".processing")
        claimed = os.listdir(processing) if os.path.isdir(processing) else []
        return [f for f in os.listdir(self.drop) if f.endswith(".csv")] + claimed

    def queue_empty(self, queue):
        with self.broker.channel() as ch:
            return ch.queue_declare(queue, passive=True).method.message_count == 0

    def report(self, restarts, samples):
        delivered = {f"out-{json.loads(r.body)['n']}" for r in self.legacy.snapshot()}
        lost = {
            "202s missing from soak.orders.sink": len(self.accepted - self.seen["orders"]),
            "CSV rows missing from soak.invoices.sink":
                len(self.rows_dropped - self.seen["invoices"]),
            "confirmed publishes neither delivered nor dead-lettered":
                len(self.published - delivered - self.seen["dlq"]),
        }
        print(f"\n### Soak: {MINUTES:g} minutes, {restarts} broker restarts\n")
        print("| when | RSS MB | open fds | threads |\n|---|---|---|---|")
        for when, s in samples:
            print(f"| {when} | {s['rss_mb']:.1f} | {s['fds']} | {s['threads']} |")
        print(f"\ntraffic: {len(self.accepted)} POSTs answered 202 ({self.refused} told to retry), "
              f"{len(self.rows_dropped)} CSV rows, {len(self.published)} outbound messages "
              f"({len(self.seen['dlq'])} dead-lettered)\n")
        for what, n in lost.items():
            print(f"- {what}: {n}")
        return sum(lost.values())

    def close(self):
        if getattr(self, "proc", None):
            self.proc.terminate()
            self.proc.wait(60)
        self.legacy.close()
        self.broker.destroy()


def main():
    work = tempfile.mkdtemp(prefix="sidecar-soak-")
    soak = Soak(work)
    try:
        restarts, samples = soak.run()
        lost = soak.report(restarts, samples)
    finally:
        soak.close()
    if lost:
        print(f"\nLOST {lost}; the sidecar's log was in {work}")
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
