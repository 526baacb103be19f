#!/usr/bin/python3
"""make demo: a private RabbitMQ, a sample legacy system, the sidecar on
configs/demo.conf, a few realistic things happening, and what became of each.

Leaves nothing running unless DEMO_KEEP=1 (then it prints how to stop)."""
import json
import os
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
        show(f"{DIM}legacy CRM: POST /api/customers customer={body.get('customer_id')} "
             f"Idempotency-Key={key} → {status}{OFF}")
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def admin_wiring(broker):
    """What the RabbitMQ admin does: the exchange and the bindings."""
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
    return r


def main():
    keep = os.environ.get("DEMO_KEEP") == "1"
    work = tempfile.mkdtemp(prefix="amqp-sidecar-demo-")
    binary = os.path.join(ROOT, "build", "amqp-sidecar")
    broker = crm = sidecar = None
    try:
        say("starting a private RabbitMQ (throwaway data in %s)" % work)
        broker = Broker(work, name="demo")
        broker.start()
        show(f"broker on 127.0.0.1:{broker.port}; the admin declares exchange demo.events and its bindings")
        admin_wiring(broker)

        ports = {18081: free_port(), 19101: free_port(), 18090: free_port()}
        CRM.server = ThreadingHTTPServer(("127.0.0.1", ports[18090]), CRM)
        crm = CRM.server
        threading.Thread(target=crm.serve_forever, daemon=True).start()
        show(f"sample legacy CRM on 127.0.0.1:{ports[18090]}")

        conf = runtime_config(work, broker, ports)
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
        wait_for(lambda: os.path.exists(os.path.join(work, "done", "invoices.csv")), 30,
                 what="the invoice file to be done")
        show("drop/invoices.csv → done/invoices.csv after all 3 records were confirmed")

        say("waiting for the CRM route: retries with backoff, dead letters with a reason")
        wait_for(lambda: sum(1 for c in CRM.calls if c[0] == 201) >= 2 and broker.count("demo.customers.dlq") >= 1,
                 30, what="the CRM outcomes")
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
            show(f"POST http://127.0.0.1:{ports[18081]}/orders   admin {admin}/metrics")
            show(f"drop files into {work}/drop ; sidecar log {work}/sidecar.log")
            show(f"stop with: kill {os.getpid()}   (Ctrl-C)")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
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
