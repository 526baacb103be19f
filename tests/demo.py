#!/usr/bin/python3
"""make demo: a private RabbitMQ, a sample legacy system, the sidecar on
configs/demo.conf, a few realistic things happening, and what became of each.

Leaves nothing running unless DEMO_KEEP=1: then this process stays up as the
supervisor of everything it started (broker node, legacy stub, sidecar, temp
dir), and the one `kill PID` it prints makes it clean all of it up. SIGTERM,
SIGINT (Ctrl-C) and SIGHUP all end the demo through the same cleanup.

Output order: the legacy stub answers on its own threads, while the main thread
prints each sender's answer. The stub's lines are therefore queued and printed
by the main thread after the answer to the POST that caused them, so a message's
202 to the sender always comes before the CRM's 201 for it."""
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from conftest import Broker, free_port, wait_for  # noqa: E402

import pika  # noqa: E402
import requests  # noqa: E402

BOLD, DIM, OFF = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def say(text):
    print(f"\n{BOLD}== {text}{OFF}", flush=True)


def show(text):
    print(f"   {text}", flush=True)


# Lines from the legacy stub's threads, printed in order by the main thread
# (see the module comment): one writer to stdout, so nothing interleaves.
legacy_lines = queue.SimpleQueue()


def flush_legacy():
    while True:
        try:
            show(legacy_lines.get_nowait())
        except queue.Empty:
            return


class Stop(Exception):
    """A signal asked the demo to stop: unwind into the cleanup."""


def on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


class CRM(BaseHTTPRequestHandler):
    """The legacy CRM: 201 for a customer with an email, 400 without one, and a
    customer named 'flaky' meets a CRM that is overloaded twice (503) first."""
    calls = []
    flaky_left = 2

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        key = self.headers.get("Idempotency-Key")
        if body.get("customer_id") == "flaky" and CRM.flaky_left > 0:
            CRM.flaky_left -= 1
            status, answer = 503, {"error": "overloaded, try again"}
        elif not body.get("email"):
            status, answer = 400, {"error": "email is required"}
        else:
            status, answer = 201, {"created": body["customer_id"]}
        CRM.calls.append((status, body.get("customer_id"), key))
        legacy_lines.put(f"{DIM}legacy CRM: POST /api/customers customer={body.get('customer_id')} "
             f"Idempotency-Key={key} → {status}{OFF}")
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ADMIN_STEPS = [  # what the RabbitMQ admin does, as rabbitmqadmin/rabbitmqctl would
    "rabbitmqadmin declare exchange name=demo.events type=topic durable=true",
    "rabbitmqadmin declare exchange name=demo.dlx type=direct durable=true",
    "rabbitmqadmin declare queue name=demo.customers durable=true "
    "arguments='{\"x-queue-type\":\"classic\",\"x-dead-letter-exchange\":\"demo.dlx\",\"x-dead-letter-routing-key\":\"demo.customers\"}'",
    "rabbitmqadmin declare queue name=demo.archive durable=true "
    "arguments='{\"x-queue-type\":\"classic\",\"x-dead-letter-exchange\":\"demo.dlx\",\"x-dead-letter-routing-key\":\"demo.archive\"}'",
    "rabbitmqadmin declare binding source=demo.events destination=demo.customers routing_key=order.created",
    "rabbitmqadmin declare binding source=demo.events destination=demo.archive routing_key=order.created",
    "rabbitmqadmin declare binding source=demo.events destination=demo.archive routing_key=order.cancelled",
    "rabbitmqadmin declare binding source=demo.events destination=demo.archive routing_key='invoice.#'",
]


def admin_wiring(broker):
    """What the RabbitMQ admin does: the exchange and the bindings (ADMIN_STEPS,
    done here through AMQP because the private node runs no management plugin)."""
    with broker.channel() as ch:
        ch.exchange_declare("demo.events", "topic", durable=True)
        for q in ("demo.customers", "demo.archive"):
            ch.queue_declare(q, durable=True, arguments={
                "x-queue-type": "classic", "x-dead-letter-exchange": "demo.dlx",
                "x-dead-letter-routing-key": q})
        ch.exchange_declare("demo.dlx", "direct", durable=True)
        ch.queue_bind("demo.customers", "demo.events", "order.created")
        for key in ("order.created", "order.cancelled", "invoice.#"):
            ch.queue_bind("demo.archive", "demo.events", key)


def runtime_config(work, broker, ports):
    for name in ("demo.conf", "orders.jq", "customer.jq"):
        shutil.copy(os.path.join(ROOT, "configs", name), work)
    path = os.path.join(work, "demo.conf")
    text = open(path).read()
    text = text.replace("amqp://guest:guest@127.0.0.1:5672/%2f", broker.url)
    for old, new in ports.items():
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
    open(path, "w").write(text)
    for d in ("drop", "done", "failed", "archive"):
        os.makedirs(os.path.join(work, d), exist_ok=True)
    return path


def post(url, body):
    r = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    show(f"POST {body[:60]}{'…' if len(body) > 60 else ''}  →  {r.status_code} {r.text.strip()}")
    flush_legacy()
    return r


def wait_printing(predicate, timeout, what):
    """wait_for that keeps printing the legacy stub's lines meanwhile."""
    def step():
        flush_legacy()
        return predicate()
    wait_for(step, timeout, what=what)
    flush_legacy()


def main():
    keep = os.environ.get("DEMO_KEEP") == "1"
    work = tempfile.mkdtemp(prefix="amqp-sidecar-demo-")
    binary = os.path.join(ROOT, "build", "amqp-sidecar")
    broker = crm = sidecar = None
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        say("starting a private RabbitMQ (throwaway data in %s)" % work)
        broker = Broker(work, name="demo")
        broker.start()
        show(f"broker URL {broker.url}  (node {broker.node})")
        say("the RabbitMQ admin wires the exchange, its queues and bindings")
        for step in ADMIN_STEPS:
            show(step)
        admin_wiring(broker)

        ports = {18081: free_port(), 19101: free_port(), 18090: free_port()}
        CRM.server = ThreadingHTTPServer(("127.0.0.1", ports[18090]), CRM)
        crm = CRM.server
        threading.Thread(target=crm.serve_forever, daemon=True).start()
        show(f"sample legacy CRM on 127.0.0.1:{ports[18090]}")

        conf = runtime_config(work, broker, ports)
        show(f"sidecar config {conf}")
        say("amqp-sidecar check -c demo.conf --connect")
        r = subprocess.run([binary, "check", "-c", conf, "--connect"], capture_output=True, text=True)
        print(re.sub(r"^", "   ", r.stdout + r.stderr, flags=re.M).rstrip())
        if r.returncode != 0:
            sys.exit("demo: the config does not check out")

        say("starting the sidecar (its log: %s/sidecar.log)" % work)
        log = open(os.path.join(work, "sidecar.log"), "w")
        sidecar = subprocess.Popen([binary, "run", "-c", conf], stdout=log, stderr=log)
        admin = f"http://127.0.0.1:{ports[19101]}"
        def ready():
            if sidecar.poll() is not None:
                sys.exit("demo: the sidecar exited:\n" + open(log.name).read())
            try:
                return requests.get(admin + "/readyz", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_for(ready, 30, what="the sidecar to be ready")
        show(f"admin URL {admin}  (/healthz /readyz /metrics)")
        show(f"ready: {requests.get(admin + '/readyz').text.strip()[:110]}…")

        orders = f"http://127.0.0.1:{ports[18081]}/orders"
        say("the shop POSTs orders (answered only after RabbitMQ confirmed them)")
        post(orders, '{"id": 1001, "status": "created", "customer": "alice", "email": "alice@example.com", "lines": [{"sku": "A", "qty": 2, "price": 9.5}]}')
        post(orders, '{"id": 1002, "status": "created", "customer": "bob", "lines": [{"sku": "B", "qty": 1, "price": 20}]}')
        post(orders, '{"id": 1003, "status": "created", "customer": "flaky", "email": "f@example.com", "lines": []}')
        post(orders, '{"id": 1004, "status": "refunded", "customer": "alice", "lines": []}')
        post(orders, '{"id": 1005, "status": ')

        say("the ERP drops an invoice export into drop/ (CSV with a quoted comma and a BOM)")
        with open(os.path.join(work, "drop", ".invoices.csv.part"), "w", encoding="utf-8-sig") as f:
            f.write('invoice,customer,amount\r\nINV-1,"Alice, Ltd",19.00\r\nINV-2,Bob,20.00\r\nINV-3,Flaky,0.10\r\n')
        os.rename(os.path.join(work, "drop", ".invoices.csv.part"), os.path.join(work, "drop", "invoices.csv"))
        wait_printing(lambda: os.path.exists(os.path.join(work, "done", "invoices.csv")), 30,
                 what="the invoice file to be done")
        show("drop/invoices.csv → done/invoices.csv after all 3 records were confirmed")

        say("waiting for the CRM route: retries with backoff, dead letters with a reason")
        wait_printing(lambda: sum(1 for c in CRM.calls if c[0] == 201) >= 2
                      and broker.count("demo.customers.dlq") >= 1, 30, what="the CRM outcomes")
        archived = lambda: sorted(f for f in os.listdir(os.path.join(work, "archive"))
                                  if not f.startswith("."))  # .tmp-…: being written
        wait_for(lambda: len(archived()) >= 5, 30, what="archive files")

        say("what happened")
        show("order 1001 (alice)   → CRM 201, acked")
        flaky = [c for c in CRM.calls if c[1] == "flaky"]
        show(f"order 1003 (flaky)   → CRM {' → '.join(str(c[0]) for c in flaky)}, "
             f"same Idempotency-Key each time: {len({c[2] for c in flaky}) == 1}")
        for props, body in broker.get_all("demo.customers.dlq"):
            show(f"order 1002 (bob)     → dead letter in demo.customers.dlq: "
                 f"x-sidecar-error={props.headers.get('x-sidecar-error')!r}, "
                 f"x-sidecar-attempts={props.headers.get('x-sidecar-attempts')}")
        for props, body in broker.get_all("demo.orders.dlq"):
            show(f"order 1004 (refunded) → no binding: parked in demo.orders.dlq: "
                 f"{props.headers.get('x-sidecar-error')!r}")
        show("order 1005 (broken JSON) → 400, nothing published")
        files = archived()
        show(f"archive/: {len(files)} files, e.g. {files[0]}:")
        show("   " + open(os.path.join(work, "archive", files[0])).read().strip()[:110])
        metrics = requests.get(admin + "/metrics").text
        for line in metrics.splitlines():
            if re.match(r"amqp_sidecar_(confirmed|delivered|retries|unroutable)_total\{", line) and not line.endswith(" 0"):
                show(f"{DIM}{line}{OFF}")

        if keep:
            say("DEMO_KEEP=1: everything keeps running")
            show(f"broker URL {broker.url}")
            show(f"sidecar config {conf} ; log {work}/sidecar.log")
            show(f"admin URL {admin}/metrics ; POST http://127.0.0.1:{ports[18081]}/orders")
            show(f"drop files into {work}/drop")
            show(f"this process ({os.getpid()}) supervises the broker node, the legacy CRM, "
                 f"the sidecar and {work}")
            show(f"stop everything with: kill {os.getpid()}   (or Ctrl-C)")
            while True:  # a signal raises Stop out of the sleep
                time.sleep(0.5)
                flush_legacy()
    except Stop as stop:
        say(f"{stop} received")
    finally:
        # A second signal must not cut the cleanup short.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        flush_legacy()
        say("cleaning up")
        if sidecar is not None:
            sidecar.send_signal(signal.SIGTERM)
            code = sidecar.wait(60)
            show(f"sidecar drained and exited with {code}")
        if crm is not None:
            crm.shutdown()
        if broker is not None:
            broker.destroy()
        shutil.rmtree(work, ignore_errors=True)
        show("nothing left running")


if __name__ == "__main__":
    main()
