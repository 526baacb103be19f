"""Operating the sidecar: metrics, health, logs, signals and the command line.

What an operator relies on, checked against a real broker and real traffic:
/metrics counts exactly what happened (parsed with prometheus_client's own
text parser), /readyz follows the broker, log_format = "json" is one JSON
object per line, SIGHUP swaps secrets, SIGTERM drains in-flight requests and
exits 0, and the CLI keeps its exit codes (0 ok, 1 runtime, 2 usage/config).
"""
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import threading
import time

import pika
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, free_port, make_config, run_cli, wait_for
from http_poll_helpers import json_response, legacy_server

VERSION = open(os.path.join(ROOT, "VERSION")).read().strip()


# ---- helpers ---------------------------------------------------------------------------

def http_route(name, port, exchange, key, extra=""):
    return (f'{{ name = "{name}"; kind = "http"; listen = "127.0.0.1:{port}"; '
            f'path = "/{name}"; exchange = "{exchange}"; routing_key = "{key}"; {extra} }}')


def post(port, path, body=b'{"n":1}', headers=None, method="POST", timeout=10):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return requests.request(method, f"http://127.0.0.1:{port}{path}", data=body, headers=h,
                            timeout=timeout)


class Metrics:
    """One scrape, parsed by prometheus_client (which rejects malformed exposition)."""

    def __init__(self, sc):
        r = requests.get(sc.admin + "/metrics", timeout=5)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        self.text = r.text
        self.families = {f.name: f for f in text_string_to_metric_families(r.text)}
        self.samples = {}
        for fam in self.families.values():
            assert fam.documentation, f"{fam.name} has no HELP"
            assert fam.type in ("counter", "gauge", "histogram"), (fam.name, fam.type)
            for s in fam.samples:
                self.samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def get(self, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        assert key in self.samples, f"no sample {name}{labels} in:\n{self.text}"
        return self.samples[key]

    def route(self, name, route, **labels):
        return self.get(name, route=route, kind="http", direction="inbound", **labels)


def secret_file(path, value):
    """Writes a secret the way the sidecar accepts it (mode 0600), replacing it atomically."""
    tmp = str(path) + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.replace(tmp, path)
    return str(path)


def log_lines(sc):
    return [line for line in sc.log().splitlines() if line.strip()]


# ---- /metrics ------------------------------------------------------------------------------

def test_metrics_count_traffic_exactly(broker, sidecar, uid, tmp_path):
    """Known traffic (routed, unroutable, refused for five reasons) moves each counter by
    exactly its share; what the counters claim is also what is in the queues."""
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    broker.declare_queue(f"{uid}.orders", exchange, "order.#")
    port = free_port()
    token = secret_file(tmp_path / "token", "t0k")
    sc = sidecar(name=uid, inbound=", ".join([
        http_route("orders", port, exchange, "{header.X-Kind}"),
        http_route("secured", port, exchange, "order.secured",
                   f'auth = {{ bearer_token_file = "{token}"; }};'),
    ]))
    before = Metrics(sc)
    for route in ("orders", "secured"):
        for name in ("messages_received_total", "published_total", "confirmed_total",
                     "unroutable_total", "messages_refused_total", "publish_failed_total"):
            assert before.route("amqp_sidecar_" + name, route) == 0
    assert before.get("amqp_sidecar_build_info", version=VERSION, system=uid) == 1
    assert before.get("amqp_sidecar_broker_connected", connection="publisher") == 1
    assert before.get("amqp_sidecar_uptime_seconds") >= 0
    assert before.get("amqp_sidecar_resident_memory_bytes") > 1 << 20

    for i in range(5):
        r = post(port, "/orders", headers={"X-Kind": "order.created"})
        assert r.status_code == 202 and r.json()["routed"] is True, r.text
    for i in range(2):
        r = post(port, "/orders", headers={"X-Kind": "nobody.listens"})
        assert r.status_code == 202 and r.json()["routed"] is False, r.text
    assert post(port, "/orders", headers={"Content-Type": "text/plain",
                                          "X-Kind": "order.created"}).status_code == 415
    assert post(port, "/orders", method="PUT", headers={"X-Kind": "order.x"}).status_code == 405
    assert post(port, "/orders").status_code == 422  # no X-Kind: no routing key
    assert post(port, "/secured", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert post(port, "/secured").status_code == 401
    assert post(port, "/secured", headers={"Authorization": "Bearer t0k"}).status_code == 202
    assert post(port, "/nowhere").status_code == 404  # no route: counted nowhere

    m = Metrics(sc)
    assert m.get("amqp_sidecar_uptime_seconds") > before.get("amqp_sidecar_uptime_seconds")
    expect = {
        "orders": dict(messages_received_total=10, messages_refused_total=3, published_total=7,
                       confirmed_total=5, unroutable_total=2, nacked_total=0,
                       publish_failed_total=0),
        "secured": dict(messages_received_total=3, messages_refused_total=2, published_total=1,
                        confirmed_total=1, unroutable_total=0, nacked_total=0,
                        publish_failed_total=0),
    }
    for route, counters in expect.items():
        for name, want in counters.items():
            assert m.route("amqp_sidecar_" + name, route) == want, (route, name)
        assert m.route("amqp_sidecar_dead_letters_total", route, reason="unroutable") == \
            counters["unroutable_total"]
        # Only what an inbound http route can count is shown (see the test below).
        assert ("amqp_sidecar_dead_letters_total", tuple(sorted(dict(
            route=route, kind="http", direction="inbound", reason="rejected").items()))) \
            not in m.samples
        # The confirm-latency histogram saw every confirmed publish; buckets are cumulative.
        assert m.route("amqp_sidecar_confirm_seconds_count", route) == counters["confirmed_total"]
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in m.samples.items()
                          if k[0] == "amqp_sidecar_confirm_seconds_bucket"
                          and dict(k[1])["route"] == route))
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)
        assert buckets[-1] == (float("inf"), counters["confirmed_total"])

    # A family no route here can move (only inbound http routes) is its HELP and TYPE alone.
    for name, type_ in (("circuit_state", "gauge"), ("delivered_total", "counter"),
                        ("legacy_call_seconds", "histogram")):
        assert f"# TYPE amqp_sidecar_{name} {type_}\n" in m.text
        assert not re.search(rf"^amqp_sidecar_{name}", m.text, re.M), name

    # The counters tell the truth about the broker's side.
    assert broker.count(f"{uid}.orders") == 6
    parked = broker.get_all(f"{uid}.orders.dlq")
    assert len(parked) == 2
    assert all(p.headers["x-sidecar-error"].startswith("unroutable") for p, _ in parked)


# Which (direction, kind) each route family applies to: what the code counts for it.
INBOUND = {("inbound", k) for k in ("http", "soap", "file", "poll")}
OUTBOUND = {("outbound", k) for k in ("http", "soap", "file")}
APPLIES = {
    "messages_received_total": INBOUND | OUTBOUND,
    "messages_refused_total": INBOUND - {("inbound", "poll")},  # poll has no sender to answer
    **{name: INBOUND for name in ("published_total", "confirmed_total", "nacked_total",
                                   "unroutable_total", "publish_failed_total",
                                   "confirm_seconds")},
    **{name: OUTBOUND for name in ("delivered_total", "retries_total", "inflight",
                                    "circuit_state", "oldest_inflight_seconds",
                                    "delivery_lag_seconds")},
    "legacy_call_seconds": OUTBOUND | {("inbound", "poll")},
    # the kinds that take rate = { … } (pacer.c); zero on a route without one
    **{name: {("outbound", "http"), ("outbound", "soap"), ("inbound", "poll")}
       for name in ("throttled_seconds_total", "throttle_state")},
    **{name: {("inbound", "poll")} for name in ("poll_failures_total", "poll_failing")},
    # spool.c: the kinds that take spool = { … }; zero on a route without one
    **{name: {("inbound", "http"), ("inbound", "soap")}
       for name in ("spool_messages", "spool_bytes", "spool_oldest_seconds", "spooled_total",
                    "spool_forwarded_total", "spool_refused_total")},
}
HISTOGRAMS = {"confirm_seconds", "legacy_call_seconds", "delivery_lag_seconds"}
QUEUE_FAMILIES = {f"amqp_sidecar_queue_{f}" for f in ("messages", "consumers", "missing")}
DEAD_REASONS = {
    **{route: {"unroutable"} for route in INBOUND},
    ("inbound", "file"): {"unroutable", "invalid"},
    **{route: {"rejected", "retries_exhausted", "transform", "invalid"} for route in OUTBOUND},
}


def test_metrics_show_only_the_series_each_route_kind_can_count(broker, sidecar, uid, tmp_path):
    """One route of each kind and direction, no traffic: every series that applies to a
    route is there (zero), and none that cannot move for it (no circuit on inbound routes,
    no confirm latency on outbound, no legacy-call latency where no legacy call is made)."""
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    wsdl = os.path.join(ROOT, "configs", "crm.wsdl")
    for d in ("drop", "done", "failed", "out", "state"):
        os.makedirs(tmp_path / d)
    http_port, soap_port = free_port(), free_port()
    no_retry = "retry = { delays = [0.2]; };"
    with legacy_server() as api:
        api.default = json_response(200, [])
        inbound = ", ".join([
            http_route("hin", http_port, exchange, "h"),
            f'{{ name = "sin"; kind = "soap"; listen = "127.0.0.1:{soap_port}"; path = "/ws"; '
            f'exchange = "{exchange}"; routing_key = "s"; wsdl = "{wsdl}"; '
            f'wsdl_address = "http://127.0.0.1:{soap_port}/ws"; }}',
            f'{{ name = "fin"; kind = "file"; dir = "{tmp_path / "drop"}"; format = "json"; '
            f'exchange = "{exchange}"; routing_key = "f"; done_dir = "{tmp_path / "done"}"; '
            f'failed_dir = "{tmp_path / "failed"}"; }}',
            f'{{ name = "pin"; kind = "poll"; url = "{api.url("/items")}"; interval = 60; '
            f'id = ".id"; exchange = "{exchange}"; routing_key = "p"; }}',
        ])
        outbound = ", ".join([
            f'{{ name = "hout"; kind = "http"; url = "{api.url("/x")}"; {no_retry} }}',
            f'{{ name = "sout"; kind = "soap"; url = "{api.url("/ws")}"; '
            f'action = "urn:example:legacy/UpdateCustomer"; {no_retry} }}',
            f'{{ name = "fout"; kind = "file"; dir = "{tmp_path / "out"}"; {no_retry} }}',
        ])
        sc = sidecar(name=uid, inbound=inbound, outbound=outbound,
                     extra=f'state_dir = "{tmp_path / "state"}";')
        m = Metrics(sc)
    routes = {"hin": ("inbound", "http"), "sin": ("inbound", "soap"),
              "fin": ("inbound", "file"), "pin": ("inbound", "poll"),
              "hout": ("outbound", "http"), "sout": ("outbound", "soap"),
              "fout": ("outbound", "file")}

    def labelled(sample_name):
        """{(route, direction, kind, reason or None): value} of one sample name."""
        out = {}
        for (name, labels), value in m.samples.items():
            labels = dict(labels)
            if name == sample_name and "le" not in labels:
                route = labels["route"]
                assert routes[route] == (labels["direction"], labels["kind"]), labels
                out[(route, labels.get("reason"))] = value
        return out

    def idle(got):
        """Zero everywhere, but for the poll route, which polls once when it starts
        (an empty page: a legacy call, nothing published) whenever the scrape comes."""
        return all(v == 0 for (r, _), v in got.items() if r != "pin")

    for family, applies in APPLIES.items():
        want = {(r, None) for r, dk in routes.items() if dk in applies}
        if family in HISTOGRAMS:
            for suffix in ("_count", "_sum"):
                got = labelled(f"amqp_sidecar_{family}{suffix}")
                assert set(got) == want, (family + suffix, sorted(got), sorted(want))
                assert idle(got), (family, got)
            buckets = {(dict(k[1])["route"], dict(k[1])["le"]) for k, _ in m.samples.items()
                       if k[0] == f"amqp_sidecar_{family}_bucket"}
            assert {r for r, _ in buckets} == {r for r, _ in want}, (family, buckets)
            assert all(len({le for r2, le in buckets if r2 == r}) == 14 for r, _ in want)
        else:
            got = labelled(f"amqp_sidecar_{family}")
            assert set(got) == want, (family, sorted(got), sorted(want))
            assert idle(got), (family, got)
    got = labelled("amqp_sidecar_dead_letters_total")
    want = {(r, reason) for r, dk in routes.items() for reason in DEAD_REASONS[dk]}
    assert set(got) == want, (sorted(got - want), sorted(want - got))
    assert set(got.values()) == {0}
    # Nothing else carries a route label: every route family is in the table above.
    with_route = {name for name, labels in m.samples if "route" in dict(labels)}
    assert with_route == {f"amqp_sidecar_{f}{suffix}" for f in APPLIES
                          for suffix in (("_bucket", "_count", "_sum")
                                         if f in HISTOGRAMS else ("",))} | \
        {"amqp_sidecar_dead_letters_total"} | QUEUE_FAMILIES, with_route
    # Queue depths: one series per owned queue (route, queue, role), not per kind.
    queues = {(dict(k)["route"], dict(k)["role"]) for n, k in m.samples
              if n == "amqp_sidecar_queue_messages"}
    assert queues == {(r, "dlq") for r in routes} | {(r, "work") for r in ("hout", "sout", "fout")} \
        | {(r, "retry") for r in ("hout", "sout", "fout")}, queues


def test_readyz_and_metrics_follow_the_broker(broker, sidecar, uid):
    """Broker stopped: /readyz 503 naming the publisher connection, /metrics shows it down,
    requests get 503 + Retry-After and are counted as failed; broker back: 200 again."""
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    broker.declare_queue(f"{uid}.q", exchange, "#")
    port = free_port()
    sc = sidecar(name=uid, inbound=http_route("orders", port, exchange, "order.created",
                                              "retry_after = 7;"))
    r = sc.readyz()
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ready"
    assert body["routes"]["orders"]["ready"] is True
    assert requests.get(sc.admin + "/healthz", timeout=2).json() == {"status": "ok"}

    broker.stop()
    try:
        def down():
            r = sc.readyz()  # a Response is falsy for 503: wrap it
            return [r] if r is not None and r.status_code == 503 else None
        r = wait_for(down, 30, what="/readyz 503 while the broker is down")[0]
        body = r.json()
        assert body["status"] == "not ready"
        assert "publisher" in body and body["publisher"], body
        assert body["routes"]["orders"]["ready"] is False
        assert "publisher" in body["routes"]["orders"]["detail"], body
        assert requests.get(sc.admin + "/healthz", timeout=2).status_code == 200  # alive

        r = post(port, "/orders")
        assert r.status_code == 503 and r.headers["Retry-After"] == "7", r.text
        m = Metrics(sc)
        assert m.get("amqp_sidecar_broker_connected", connection="publisher") == 0
        assert m.get("amqp_sidecar_broker_connections_lost_total") >= 1
        assert m.route("amqp_sidecar_messages_received_total", "orders") == 1
        assert m.route("amqp_sidecar_publish_failed_total", "orders") == 1
        assert m.route("amqp_sidecar_confirmed_total", "orders") == 0
    finally:
        broker.start()

    sc.wait_ready(60)
    assert sc.readyz().json()["status"] == "ready"
    assert post(port, "/orders").status_code == 202
    m = Metrics(sc)
    assert m.get("amqp_sidecar_broker_connected", connection="publisher") == 1
    assert m.get("amqp_sidecar_broker_reconnects_total") >= 1
    assert m.route("amqp_sidecar_confirmed_total", "orders") == 1
    assert broker.count(f"{uid}.q") == 1


def test_admin_endpoints_refuse_other_methods(sidecar, uid, broker):
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    sc = sidecar(name=uid, inbound=http_route("orders", free_port(), exchange, "k"))
    for path in ("/healthz", "/readyz", "/metrics"):
        assert requests.post(sc.admin + path, timeout=2).status_code == 405
        assert requests.head(sc.admin + path, timeout=2).status_code in (200, 503)
    assert requests.get(sc.admin + "/nope", timeout=2).status_code == 404


# ---- logs ----------------------------------------------------------------------------------

def test_json_log_one_object_per_line(broker, sidecar, uid):
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    broker.declare_queue(f"{uid}.q", exchange, "order.#")
    port = free_port()
    sc = sidecar(name=uid, extra='log_format = "json";',
                 inbound=http_route("orders", port, exchange, "{header.X-Kind}"))
    assert post(port, "/orders", headers={"X-Kind": "order.created"}).status_code == 202
    r = post(port, "/orders", headers={"X-Kind": "lost.key", "Idempotency-Key": "mid-1",
                                       "X-Correlation-ID": "corr \"quoted\" \\ 1"})
    assert r.status_code == 202 and r.json()["routed"] is False
    assert post(port, "/orders", headers={"Content-Type": "text/plain"}).status_code == 415
    assert sc.stop() == 0

    lines = log_lines(sc)
    objects = []
    for line in lines:
        obj = json.loads(line)  # every line, not just most
        assert isinstance(obj, dict), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj["time"]), line
        assert obj["level"] in ("debug", "info", "warn", "error"), line
        assert isinstance(obj["msg"], str) and obj["msg"], line
        assert set(obj) <= {"time", "level", "route", "message_id", "correlation_id", "msg"}, line
        objects.append(obj)
    # The unroutable message's line names route, message_id and the (escaped) correlation_id.
    parked = [o for o in objects if o.get("message_id") == "mid-1"]
    assert parked, "\n".join(lines)
    assert all(o["route"] == "orders" and o["correlation_id"] == 'corr "quoted" \\ 1'
               for o in parked)
    assert any("unroutable" in o["msg"] and o["level"] == "warn" for o in parked)
    assert any(o.get("route") == "orders" and "415" in o["msg"] for o in objects)
    # The closing summary counts this run's traffic.
    summary = [o for o in objects if o.get("route") == "orders" and "received=" in o["msg"]]
    assert summary and "received=3" in summary[-1]["msg"], summary
    seconds = int(re.match(r"last (\d+)s: ", summary[-1]["msg"])[1])
    assert seconds < 60, "the closing summary covers this short run, not a full minute"
    assert "unroutable=1" in summary[-1]["msg"]
    # Counts are events in the interval; in_flight is what still awaited the broker
    # when the line was written: nothing, after a drain.
    assert re.search(r" confirmed=1 unroutable=1 failed=0 in_flight=0$", summary[-1]["msg"]), summary
    assert any(o["msg"].startswith("stopped (exit 0)") for o in objects)


def test_logfmt_is_the_default(broker, sidecar, uid):
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    sc = sidecar(name=uid, inbound=http_route("orders", free_port(), exchange, "k"))
    assert sc.stop() == 0
    for line in log_lines(sc):
        assert re.match(r'^time=\S+ level=(debug|info|warn|error) ', line), line
        assert re.search(r' msg=("([^"\\]|\\.)*"|\S+)$', line), line


# ---- SIGHUP ----------------------------------------------------------------------------------

def test_sighup_rereads_bearer_and_hmac_secrets(broker, sidecar, uid, tmp_path):
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    broker.declare_queue(f"{uid}.q", exchange, "#")
    token = secret_file(tmp_path / "token", "old-token")
    key = secret_file(tmp_path / "hmac", "old-key")
    port = free_port()
    sc = sidecar(name=uid, inbound=", ".join([
        http_route("bearer", port, exchange, "b",
                   f'auth = {{ bearer_token_file = "{token}"; }};'),
        http_route("signed", port, exchange, "s",
                   f'auth = {{ hmac_secret_file = "{key}"; hmac_header = "X-Hub-Signature-256"; }};'),
    ]))

    def bearer(t):
        return post(port, "/bearer", headers={"Authorization": f"Bearer {t}"}).status_code

    def signed(k, body=b'{"n":2}'):
        sig = "sha256=" + hmac.new(k.encode(), body, hashlib.sha256).hexdigest()
        return post(port, "/signed", body=body, headers={"X-Hub-Signature-256": sig}).status_code

    assert (bearer("old-token"), signed("old-key")) == (202, 202)
    assert (bearer("new-token"), signed("new-key")) == (401, 401)

    secret_file(token, "new-token")
    secret_file(key, "new-key")
    assert (bearer("old-token"), signed("old-key")) == (202, 202), "changed before SIGHUP"
    sc.proc.send_signal(signal.SIGHUP)
    sc.wait_log(r"SIGHUP: secret files re-read")
    assert (bearer("new-token"), signed("new-key")) == (202, 202)
    assert (bearer("old-token"), signed("old-key")) == (401, 401)

    # A secret that became unsafe is refused at SIGHUP; the running value stays.
    secret_file(token, "third-token")
    os.chmod(token, 0o644)
    sc.proc.send_signal(signal.SIGHUP)
    sc.wait_log(r"kept their previous values")
    assert "readable by group or others" in sc.log()
    assert bearer("new-token") == 202 and bearer("third-token") == 401
    assert sc.proc.poll() is None, "SIGHUP must never stop the sidecar"
    assert broker.count(f"{uid}.q") == 7
    assert sc.stop() == 0


# ---- SIGTERM -----------------------------------------------------------------------------------

class Responder:
    """An rpc server on the broker that answers requests only when told to."""

    def __init__(self, broker, queue):
        self.broker, self.queue = broker, queue

    def answer_all(self, expected, timeout=20):
        answered = 0
        deadline = time.monotonic() + timeout
        with self.broker.channel() as ch:
            while answered < expected and time.monotonic() < deadline:
                method, props, body = ch.basic_get(self.queue, auto_ack=True)
                if method is None:
                    time.sleep(0.05)
                    continue
                ch.basic_publish("", props.reply_to, b'{"answer":' + body + b"}",
                                 pika.BasicProperties(correlation_id=props.correlation_id,
                                                      content_type="application/json"))
                answered += 1
        return answered


def test_sigterm_answers_requests_in_flight_then_exits_0(broker, sidecar, uid):
    """rpc requests waiting for their reply when SIGTERM arrives still get the reply; a
    request whose body was still arriving is read, published and answered; new
    connections are refused; the exit code is 0."""
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    broker.declare_queue(f"{uid}.rpc", exchange, "ask")
    broker.declare_queue(f"{uid}.events", exchange, "event")
    port = free_port()
    sc = sidecar(name=uid, extra="drain_timeout = 20;", inbound=", ".join([
        http_route("ask", port, exchange, "ask", 'mode = "rpc"; timeout = 20;'),
        http_route("tell", port, exchange, "event"),
    ]))

    results = {}

    def ask(i):
        try:
            r = post(port, "/ask", body=json.dumps({"i": i}).encode(), timeout=30)
            results[i] = (r.status_code, r.text)
        except requests.RequestException as e:
            results[i] = (None, repr(e))

    clients = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for c in clients:
        c.start()
    wait_for(lambda: broker.count(f"{uid}.rpc") == 3, 10, what="3 rpc requests published")

    # A second kind of in-flight request: headers sent, half the body still to come.
    body = b'{"slow":"upload"}'
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(b"POST /tell HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
    time.sleep(0.2)

    sc.proc.send_signal(signal.SIGTERM)
    sc.wait_log(r"draining")
    time.sleep(0.5)
    assert sc.proc.poll() is None, "exited with requests in flight:\n" + sc.log()
    with pytest.raises(requests.ConnectionError):
        post(port, "/tell", timeout=2)

    slow.sendall(body[5:])
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
        chunk = slow.recv(4096)
        if not chunk:
            break
        reply += chunk
    slow.close()
    assert reply.startswith(b"HTTP/1.1 202"), reply

    assert Responder(broker, f"{uid}.rpc").answer_all(3) == 3
    for c in clients:
        c.join(30)
    assert sc.stop(timeout=30) == 0, sc.log()[-3000:]
    for i in range(3):
        status, text = results[i]
        assert status == 200, (i, status, text)
        assert json.loads(text) == {"answer": {"i": i}}
    assert broker.count(f"{uid}.events") == 1
    assert re.search(r"stopped \(exit 0\)", sc.log())


def slow_request(port, path, body, sent):
    """Opens a connection and sends headers and the first `sent` bytes of body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % (path.encode(), len(body)) + body[:sent])
    return s


def read_response(s):
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        m = re.search(rb"content-length: *(\d+)", head, re.I)
        if m and len(rest) >= int(m[1]):
            break
    s.close()
    return data


def test_sigterm_waits_for_a_request_still_uploading(broker, sidecar, uid):
    """The only work in flight is a request whose body is still arriving: drain waits
    for it, publishes it, answers 202, then exits 0."""
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    broker.declare_queue(f"{uid}.q", exchange, "#")
    port = free_port()
    sc = sidecar(name=uid, extra="drain_timeout = 20;",
                 inbound=http_route("tell", port, exchange, "event"))
    body = b'{"slow":"upload"}'
    s = slow_request(port, "/tell", body, 5)
    time.sleep(0.2)
    sc.proc.send_signal(signal.SIGTERM)
    sc.wait_log(r"draining")
    time.sleep(0.5)
    assert sc.proc.poll() is None, "exited with a request in flight:\n" + sc.log()
    s.sendall(body[5:])
    assert read_response(s).startswith(b"HTTP/1.1 202")
    assert sc.stop(timeout=30) == 0
    assert broker.count(f"{uid}.q") == 1


def test_sigterm_exits_1_when_drain_timeout_cuts_work_short(broker, sidecar, uid):
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    broker.declare_queue(f"{uid}.rpc", exchange, "ask")
    port = free_port()
    sc = sidecar(name=uid, extra="drain_timeout = 1;",
                 inbound=http_route("ask", port, exchange, "ask", 'mode = "rpc"; timeout = 30;'))
    result = {}

    def ask():
        try:
            result["r"] = post(port, "/ask", timeout=30)
        except requests.RequestException as e:
            result["e"] = e

    t = threading.Thread(target=ask)
    t.start()
    wait_for(lambda: broker.count(f"{uid}.rpc") == 1, 10, what="the rpc request published")
    started = time.monotonic()
    assert sc.stop(timeout=30) == 1
    assert time.monotonic() - started < 10
    t.join(30)
    assert "drain_timeout (1s) passed with work in flight" in sc.log()
    # Never a success the sidecar could not stand behind.
    assert "r" not in result or result["r"].status_code != 200


# ---- command line ------------------------------------------------------------------------------

def test_cli_version_help_keys():
    r = run_cli("--version")
    assert (r.returncode, r.stdout) == (0, f"amqp-sidecar {VERSION}\n")
    r = run_cli("--help")
    assert r.returncode == 0 and r.stderr == ""
    for word in ("run", "check", "topology", "replay", "transform", "keys", "--connect",
                 "Exit codes: 0 ok, 1 runtime failure, 2 usage or config error"):
        assert word in r.stdout, word
    r = run_cli("keys", "--markdown")
    assert r.returncode == 0
    for section in ("#### Process", "#### Every route", "#### Every inbound route",
                    "#### Every outbound route", "#### Inbound `http`"):
        assert section in r.stdout, section
    for key in ("`name`", "`broker.url`", "`admin.listen`", "`log_format`", "`drain_timeout`",
                "`auth.bearer_token_file`", "`retry.delays`"):
        assert key in r.stdout, key


@pytest.mark.parametrize("args, says", [
    (("frobnicate", "-c", "x.conf"), 'unknown command "frobnicate"'),
    (("check",), "check needs -c FILE"),
    (("run", "--no-such-option"), "unknown option"),
    (("transform", "-c", "x.conf"), "transform needs a ROUTE name"),
    (("check", "-c", "x.conf", "extra"), 'unexpected argument "extra"'),
    (("replay", "-c", "x.conf", "r", "--max", "lots"), "--max wants a number"),
])
def test_cli_usage_errors_exit_2(args, says):
    r = run_cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert says in r.stderr and "--help" in r.stderr


def test_cli_config_errors_exit_2_with_file_and_line(broker, tmp_path, uid):
    good = make_config(broker, uid, inbound=http_route("orders", free_port(), "x", "k"))
    cases = {
        "syntax": (good + "oops = ;\n", r":\d+: syntax error"),
        "unknown_key": (good.replace("heartbeat = 5;", "heartbeet = 5;"),
                        r":2: .*unknown key.*heartbeet.*heartbeat"),
        "bad_type": (good + 'drain_timeout = "soon";\n', r":\d+: .*drain_timeout"),
        "bad_log_format": (good + 'log_format = "xml";\n', r":\d+: .*log_format"),
        "missing_name": (good.replace(f'name = "{uid}";', ""),
                         r"config: missing required key \"name\""),
        "missing_secret": (good.replace('routing_key = "k";', 'routing_key = "k"; auth = { '
                                        'bearer_token_file = "/nonexistent/token"; };'),
                           r":\d+: .*/nonexistent/token"),
    }
    for what, (text, pattern) in cases.items():
        path = tmp_path / f"{what}.conf"
        path.write_text(text)
        for command in ("check", "run"):
            r = run_cli(command, "-c", str(path), timeout=20)
            assert r.returncode == 2, (what, command, r.stdout, r.stderr)
            assert re.search(pattern, r.stderr), (what, command, r.stderr)
            assert "nothing was started" in r.stderr, (what, r.stderr)
    missing = run_cli("check", "-c", str(tmp_path / "absent.conf"))
    assert missing.returncode == 2 and "No such file or directory" in missing.stderr
    ok = tmp_path / "ok.conf"
    ok.write_text(good)
    r = run_cli("check", "-c", str(ok))
    assert r.returncode == 0 and "ok, 1 route" in r.stdout, r.stderr


def test_cli_runtime_failures_exit_1(broker, tmp_path, uid):
    """A port already taken, or a broker that is not there: exit 1, with a reason."""
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        path = tmp_path / "busy.conf"
        path.write_text(make_config(broker, uid, inbound=http_route("orders", port, exchange,
                                                                     "k")))
        r = run_cli("run", "-c", str(path), timeout=30)
        assert r.returncode == 1, r.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in r.stderr

    path = tmp_path / "nobroker.conf"
    path.write_text(make_config(broker, uid, inbound=http_route("orders", free_port(),
                                                                exchange, "k"))
                    .replace(f":{broker.port}/", f":{free_port()}/"))
    r = run_cli("check", "-c", str(path), "--connect", timeout=30)
    assert r.returncode == 1 and "broker:" in r.stderr, (r.stdout, r.stderr)
    path = tmp_path / "noexchange.conf"
    path.write_text(make_config(broker, uid, inbound=http_route("orders", free_port(),
                                                                f"{uid}.absent", "k")))
    r = run_cli("check", "-c", str(path), "--connect", timeout=30)
    assert r.returncode == 1 and f"{uid}.absent" in r.stderr, (r.stdout, r.stderr)
