"""OpenTelemetry traces over OTLP/HTTP (JSON), against a receiver the test runs.

One span per hop: an inbound request from submit to the broker's confirm
(parented on the caller's traceparent), an outbound delivery from arrival to
its settling; route, message_id and outcome as attributes. A traceparent that
says "not sampled" records nothing; a collector that is down costs spans
(counted as dropped), never messages.
"""
import http.server
import json
import threading

import requests

from conftest import free_port, make_config, wait_for
from http_poll_helpers import legacy_server
from test_ops import Metrics, http_route

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class Collector:
    """An OTLP/HTTP receiver: keeps every span POSTed to /v1/traces."""

    def __init__(self):
        self.spans, self.resources, self.cond = [], [], threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = self.path == "/v1/traces" and \
                    self.headers["Content-Type"] == "application/json"
                if ok:
                    doc = json.loads(body)
                    with outer.cond:
                        for rs in doc["resourceSpans"]:
                            outer.resources.append(rs["resource"])
                            for ss in rs["scopeSpans"]:
                                outer.spans.extend(ss["spans"])
                        outer.cond.notify_all()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, name):
        with self.cond:
            return [s for s in self.spans if s["name"] == name]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def attrs(span):
    return {a["key"]: a["value"]["stringValue"] for a in span["attributes"]}


def test_spans_per_hop_parented_on_the_callers_traceparent(broker, sidecar, uid):
    collector = Collector()
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    broker.declare_queue(f"{uid}.sink", exchange, "#")
    port = free_port()
    try:
        with legacy_server() as api:
            sc = sidecar(make_config(
                broker, uid, inbound=http_route("orders", port, exchange, "o"),
                outbound=f'{{ name = "billing"; kind = "http"; url = "{api.url("/x")}"; }}',
                admin_port=free_port(),
                extra=f'otel = {{ endpoint = "{collector.url}/"; service_name = "crm-edge"; }};'))
            url = f"http://127.0.0.1:{port}/orders"
            h = {"Content-Type": "application/json"}
            # Not sampled by the caller: no span; then a sampled one.
            r = requests.post(url, data=b"{}", timeout=10, headers={
                **h, "traceparent": f"00-{'1' * 32}-{'2' * 16}-00", "Idempotency-Key": "quiet-1"})
            assert r.status_code == 202
            r = requests.post(url, data=b'{"n":1}', timeout=10, headers={
                **h, "traceparent": f"00-{TRACE}-{PARENT}-01", "Idempotency-Key": "order-1"})
            assert r.status_code == 202
            broker.publish("", f"{uid}.billing", b'{"n":2}', message_id="bill-1",
                           headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
            wait_for(lambda: collector.named("publish orders") and
                     collector.named("deliver billing"), 20, what="both spans exported")
            [pub] = collector.named("publish orders")
            assert pub["traceId"] == TRACE and pub["parentSpanId"] == PARENT
            assert len(pub["spanId"]) == 16 and pub["spanId"] != PARENT
            assert pub["kind"] == 2 and pub["status"]["code"] == 1
            assert attrs(pub) == {"amqp_sidecar.route": "orders",
                                  "messaging.message.id": "order-1",
                                  "amqp_sidecar.outcome": "confirmed"}
            assert int(pub["startTimeUnixNano"]) <= int(pub["endTimeUnixNano"])
            [dlv] = collector.named("deliver billing")
            assert dlv["traceId"] == TRACE and dlv["parentSpanId"] == PARENT
            assert dlv["kind"] == 5 and dlv["status"]["code"] == 1
            assert attrs(dlv) == {"amqp_sidecar.route": "billing",
                                  "messaging.message.id": "bill-1",
                                  "amqp_sidecar.outcome": "delivered"}
            assert all(a["value"]["stringValue"] == "crm-edge"
                       for res in collector.resources for a in res["attributes"]
                       if a["key"] == "service.name")
            assert not any(attrs(s).get("messaging.message.id") == "quiet-1"
                           for s in collector.spans), "an unsampled trace was recorded"
            m = Metrics(sc)
            assert m.get("amqp_sidecar_otel_spans_exported_total") >= 2
            assert m.get("amqp_sidecar_otel_spans_dropped_total") == 0
    finally:
        collector.close()


def test_a_collector_that_is_down_costs_spans_not_messages(broker, sidecar, uid):
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    broker.declare_queue(f"{uid}.sink", exchange, "#")
    port, dead = free_port(), free_port()
    sc = sidecar(make_config(
        broker, uid, inbound=http_route("orders", port, exchange, "o"), admin_port=free_port(),
        extra=f'otel = {{ endpoint = "http://127.0.0.1:{dead}"; sample_ratio = 1.0; }};'))
    for i in range(5):
        r = requests.post(f"http://127.0.0.1:{port}/orders", data=b"{}", timeout=10,
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 202
    wait_for(lambda: Metrics(sc).get("amqp_sidecar_otel_spans_dropped_total") == 5, 20,
             what="the five spans dropped")
    m = Metrics(sc)
    assert m.get("amqp_sidecar_otel_export_failures_total") >= 1
    assert m.get("amqp_sidecar_otel_spans_exported_total") == 0
    assert broker.count(f"{uid}.sink") == 5
    assert "cannot export" in sc.log()


def test_otel_without_endpoint_is_refused_at_its_line(broker, tmp_path):
    from conftest import run_cli
    path = tmp_path / "c.conf"
    path.write_text(make_config(broker, "crm", inbound=http_route("o", free_port(), "x", "k"),
                                extra="otel = {\n  sample_ratio = 2.0; };"))
    r = run_cli("check", "-c", str(path))
    assert r.returncode == 2
    assert f"{path}:3:" in r.stderr and "otel has no endpoint" in r.stderr, r.stderr
    assert "sample_ratio = 2 is out of range" in r.stderr, r.stderr
