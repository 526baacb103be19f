"""Faults between the sidecar and the broker that a clean broker restart does not
show: added latency, a black hole (traffic stalls, nothing closes), one direction
cut, and a reset in the middle of a frame — each under inbound and outbound load,
through tests/e2e/fault_proxy.py.

For every fault: the sidecar notices within about two heartbeats (it opens a new
connection), answers no 202 it cannot back (every id answered 202 is in the bound
queue afterwards), loses no delivery (every message published to the outbound
queue reached the legacy sink or the DLQ with a reason), and takes 202s again once
the fault is lifted."""
import json
import threading
import time

import pika
import pytest
import requests

from conftest import free_port, make_config, wait_for
from fault_proxy import FaultProxy
from http_poll_helpers import legacy_server

HEARTBEAT = 2  # seconds: a silent peer is noticed after two of them


class Load:
    """Clients POSTing to the inbound route, and a producer feeding the outbound
    queue directly (not through the proxy), until stop()."""

    def __init__(self, url, broker, queue, clients=6):
        self.url, self.broker, self.queue = url, broker, queue
        self.accepted, self.refused, self.published = [], [], []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                        for n in range(clients)]
        self.threads.append(threading.Thread(target=self._producer, daemon=True))
        for t in self.threads:
            t.start()

    def _client(self, n):
        session = requests.Session()
        i = 0
        while not self.halt.is_set():
            key = f"c{n}-{i}"
            i += 1
            try:
                r = session.post(self.url, data=json.dumps({"k": key}), timeout=40,
                                 headers={"Content-Type": "application/json",
                                          "Idempotency-Key": key})
                status = r.status_code
            except requests.RequestException:
                status = 0
            with self.lock:
                (self.accepted if status == 202 else self.refused).append((key, status))
            if status != 202:
                time.sleep(0.05)

    def _producer(self):
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.broker.port, heartbeat=0))
        ch = conn.channel()
        ch.confirm_delivery()
        i = 0
        while not self.halt.is_set():
            mid = f"out-{i}"
            ch.basic_publish("", self.queue, json.dumps({"n": i}).encode(),
                             pika.BasicProperties(delivery_mode=2, message_id=mid,
                                                  content_type="application/json"),
                             mandatory=True)
            with self.lock:
                self.published.append(mid)
            i += 1
            time.sleep(0.01)
        conn.close()

    def n_accepted(self):
        with self.lock:
            return len(self.accepted)

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(60)


def apply(proxy, fault):
    {"latency": lambda: proxy.latency(0.25),
     "black_hole": proxy.black_hole,
     "cut_up": lambda: proxy.cut("up"),
     "cut_down": lambda: proxy.cut("down"),
     "reset": proxy.reset}[fault]()


@pytest.mark.parametrize("fault", ["latency", "black_hole", "cut_up", "cut_down", "reset"])
def test_a_fault_under_load_loses_nothing_and_heals(broker, sidecar, uid, fault):
    proxy = FaultProxy(broker.port)
    exchange, sink_queue, out_queue = f"{uid}.events", f"{uid}.sink", f"{uid}.legacy"
    broker.declare_exchange(exchange)
    broker.declare_queue(sink_queue, exchange, "order.#")
    port = free_port()
    with legacy_server() as legacy:
        inbound = (f'{{ name = "orders"; kind = "http"; listen = "127.0.0.1:{port}"; '
                   f'path = "/orders"; exchange = "{exchange}"; routing_key = "order.created"; }}')
        outbound = (f'{{ name = "legacy"; kind = "http"; url = "{legacy.url("/in")}"; '
                    f'concurrency = 8; retry = {{ delays = [0.5, 1.0]; }}; '
                    f'circuit = {{ failures = 0; }}; }}')
        text = make_config(broker, uid, inbound, outbound, free_port())
        text = text.replace(f"127.0.0.1:{broker.port}/", f"127.0.0.1:{proxy.port}/")
        text = text.replace("heartbeat = 5;", f"heartbeat = {HEARTBEAT};")
        s = sidecar(text)
        load = Load(f"http://127.0.0.1:{port}/orders", broker, out_queue)
        try:
            wait_for(lambda: load.n_accepted() > 200 and len(legacy.snapshot()) > 100, 30,
                     what="traffic before the fault")
            before = proxy.connections
            started = time.monotonic()
            apply(proxy, fault)
            if fault == "latency":
                time.sleep(3 * HEARTBEAT)  # slower, but nothing breaks
                assert proxy.connections == before, "latency alone must not drop the connection"
            else:
                # Noticed: the sidecar gives up on the connection and opens another.
                wait_for(lambda: proxy.connections > before, 6 * HEARTBEAT,
                         what=f"a new connection after the {fault}")
                noticed = time.monotonic() - started
                assert noticed <= 3 * HEARTBEAT + 2, f"noticed after {noticed:.1f}s"
                time.sleep(HEARTBEAT)  # the fault stays a while longer
            proxy.heal()
            n = load.n_accepted()
            wait_for(lambda: load.n_accepted() > n + 200, 40, what="202s again after healing")
            wait_for(lambda: s.readyz().status_code == 200, 20, what="ready again")
        finally:
            load.stop()
            proxy.heal()
        # Every published delivery reached the legacy side or the DLQ (with a reason).
        def delivered():
            got = {json.loads(r.body)["n"] for r in legacy.snapshot()}
            return {f"out-{n}" for n in got}
        wait_for(lambda: broker.count(out_queue) == 0 and
                 set(load.published) <= delivered() | {p.message_id for p, _ in
                                                       broker.get_all(out_queue + ".dlq")},
                 60, what="every delivery settled")
        assert s.proc.poll() is None  # it healed itself: no restart
        s.stop()
    proxy.close()
    # Every 202 is backed by a message in the bound queue.
    in_queue = {json.loads(body)["k"] for _, body in broker.get_all(sink_queue)}
    missing = [k for k, _ in load.accepted if k not in in_queue]
    print(f"\nFAULT {fault}: connections {before}->{proxy.connections} accepted={len(load.accepted)} "
          f"refused={len(load.refused)} statuses={sorted(set(x[1] for x in load.refused))} "
          f"published={len(load.published)} legacy={len(legacy.snapshot())} in_queue={len(in_queue)}")
    assert not missing, f"{len(missing)} of {len(load.accepted)} 202s lost: {missing[:5]}"
    if fault == "latency":
        assert not [r for r in load.refused if r[1] != 202], load.refused[:5]
