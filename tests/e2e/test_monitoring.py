"""Monitoring the boundary: queue depths, lag, the status page.

Depths come from passive queue.declare on the connection that owns each queue
(admin.queue_interval); a queue deleted under the sidecar is reported missing
while the connection's other work goes on. Lag is a first delivery's age at
arrival (from its AMQP timestamp); the oldest in-flight gauge says how long
the oldest unsettled delivery has waited in the sidecar.
"""
import math
import time

from conftest import free_port, make_config, wait_for
from http_poll_helpers import json_response, legacy_server
from test_ops import Metrics, http_route, post


def depth(sc, name, **labels):
    return Metrics(sc).get(f"amqp_sidecar_{name}", **labels)


def test_queue_depths_of_every_owned_queue_and_a_missing_one(broker, sidecar, uid):
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    broker.declare_queue(f"{uid}.sink", exchange, "#")
    port = free_port()
    with legacy_server() as api:
        api.default = json_response(503, {"busy": True})  # every call fails: to the retry tier
        q = f"{uid}.work"
        sc = sidecar(make_config(
            broker, uid, inbound=http_route("orders", port, exchange, "o"),
            outbound=f'{{ name = "work"; kind = "http"; url = "{api.url("/x")}"; '
                     f'retry = {{ delays = [60, 120]; }}; }}',
            extra=f'admin = {{ listen = "127.0.0.1:{free_port()}"; queue_interval = 1; }};'))
        for i in range(3):
            broker.publish("", q, b'{"n":%d}' % i, message_id=f"m{i}")
        for i in range(2):
            broker.publish("", f"{q}.dlq", b'{"dead":1}')
        work = dict(route="work", queue=q, role="work")
        retry1 = dict(route="work", queue=f"{q}.retry.1", role="retry")
        retry2 = dict(route="work", queue=f"{q}.retry.2", role="retry")
        dlq = dict(route="work", queue=f"{q}.dlq", role="dlq")
        inbound_dlq = dict(route="orders", queue=f"{uid}.orders.dlq", role="dlq")
        # One round reads the queues one after another: wait for a scrape that has them all.
        def settled():
            m = Metrics(sc)
            ok = (m.get("amqp_sidecar_queue_messages", **retry1) == 3 and
                  m.get("amqp_sidecar_queue_messages", **dlq) == 2)
            return m if ok else None
        m = wait_for(settled, 20, what="three messages in the first retry tier, two in the DLQ")
        assert m.get("amqp_sidecar_queue_messages", **work) == 0
        assert m.get("amqp_sidecar_queue_consumers", **work) == 1  # the sidecar itself
        assert m.get("amqp_sidecar_queue_messages", **retry2) == 0
        assert m.get("amqp_sidecar_queue_messages", **dlq) == 2
        assert m.get("amqp_sidecar_queue_messages", **inbound_dlq) == 0
        assert m.get("amqp_sidecar_queue_consumers", **inbound_dlq) == 0
        for labels in (work, retry1, retry2, dlq, inbound_dlq):
            assert m.get("amqp_sidecar_queue_missing", **labels) == 0

        # The inbound DLQ deleted: reported, and the publisher's connection goes on.
        broker.ctl("delete_queue", f"{uid}.orders.dlq")
        wait_for(lambda: depth(sc, "queue_missing", **inbound_dlq) == 1, 20,
                 what="the deleted DLQ reported missing")
        assert math.isnan(depth(sc, "queue_messages", **inbound_dlq))
        assert f"queue {uid}.orders.dlq is gone" in sc.log()
        r = post(port, "/orders")
        assert r.status_code == 202, r.text
        time.sleep(2.5)  # two more rounds on the same connection, across the missing queue
        m = Metrics(sc)
        assert m.get("amqp_sidecar_broker_connections_lost_total") == 0
        assert m.get("amqp_sidecar_queue_messages", **dlq) == 2
        assert m.get("amqp_sidecar_queue_missing", **inbound_dlq) == 1
        assert sc.log().count(f"queue {uid}.orders.dlq is gone") == 1  # once, not every round
        assert post(port, "/orders").status_code == 202

        broker.declare_queue(f"{uid}.orders.dlq")  # back: read again
        wait_for(lambda: depth(sc, "queue_missing", **inbound_dlq) == 0, 20,
                 what="the DLQ reported back")
        assert depth(sc, "queue_messages", **inbound_dlq) == 0


def test_delivery_lag_and_oldest_in_flight(broker, sidecar, uid):
    with legacy_server() as api:
        api.default = json_response(200, {"ok": True}, delay=4)  # a slow legacy call
        q = f"{uid}.lag"
        sc = sidecar(name=uid, outbound=f'{{ name = "lag"; kind = "http"; url = "{api.url("/x")}"; }}')
        labels = dict(route="lag", kind="http", direction="outbound")
        m = Metrics(sc)
        assert m.get("amqp_sidecar_oldest_inflight_seconds", **labels) == 0
        assert m.get("amqp_sidecar_delivery_lag_seconds_count", **labels) == 0
        broker.publish("", q, b'{"old":1}', timestamp=int(time.time()) - 100)
        broker.publish("", q, b'{"no timestamp":1}')  # not observed: nothing to measure
        wait_for(lambda: Metrics(sc).get("amqp_sidecar_delivery_lag_seconds_count", **labels)
                 == 1, 10, what="the lag observed")
        time.sleep(1.5)
        m = Metrics(sc)
        assert m.get("amqp_sidecar_oldest_inflight_seconds", **labels) >= 1
        assert m.get("amqp_sidecar_delivery_lag_seconds_bucket", le="60", **labels) == 0
        assert m.get("amqp_sidecar_delivery_lag_seconds_bucket", le="120", **labels) == 1
        assert 100 <= m.get("amqp_sidecar_delivery_lag_seconds_sum", **labels) < 102
        wait_for(lambda: len(api.requests) == 2 and Metrics(sc).get(
            "amqp_sidecar_oldest_inflight_seconds", **labels) == 0, 20,
            what="both delivered, nothing in flight")
        assert Metrics(sc).get("amqp_sidecar_delivery_lag_seconds_count", **labels) == 1
