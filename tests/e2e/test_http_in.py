"""REST inbound (legacy HTTP → AMQP): every status DESIGN.md names, auth,
properties, unroutable parking, broker outages, rpc, and the promise that no
request answered 2xx is missing from the broker."""
import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import re
import signal
import threading
import time
import uuid

import pika
import pytest
import requests

from conftest import free_port, plain, wait_for

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = "Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


class Inbound:
    """One sidecar with one http route, an exchange and a bound queue."""

    def __init__(self, broker, sidecar, uid, route_extra="", routing_key="order.created",
                 bind="order.#", exchange_kind="topic", extra=""):
        self.broker = broker
        self.uid = uid
        self.exchange = f"{uid}.events"
        self.queue = f"{uid}.sink"
        broker.declare_exchange(self.exchange, exchange_kind)
        broker.declare_queue(self.queue, self.exchange, bind)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/orders"
        route = (f'{{ name = "orders"; kind = "http"; listen = "127.0.0.1:{self.port}"; '
                 f'path = "/orders"; exchange = "{self.exchange}"; routing_key = "{routing_key}"; '
                 f'{route_extra} }}')
        self.sidecar = sidecar(name=uid, inbound=route, extra=extra)

    def post(self, body=b'{"id": 1}', content_type="application/json", headers=None, **kw):
        h = {"Content-Type": content_type} if content_type else {}
        h.update(headers or {})
        return requests.post(self.url, data=body, headers=h, timeout=kw.pop("timeout", 10), **kw)

    def messages(self):
        return self.broker.get_all(self.queue)


def test_accepted_after_confirm_with_properties(broker, sidecar, uid):
    t = Inbound(broker, sidecar, uid, 'pass_headers = ["X-Tenant"];')
    r = t.post(b'{"id": 42}', headers={"X-Tenant": "acme", "X-Secret": "nope",
                                        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    assert r.status_code == 202
    answer = r.json()
    assert answer["routed"] is True
    uuid.UUID(answer["message_id"])
    assert r.headers["X-Correlation-ID"] == answer["correlation_id"]
    [(props, body)] = t.messages()
    assert body == b'{"id": 42}'
    assert props.delivery_mode == 2
    assert props.content_type == "application/json"
    assert props.message_id == answer["message_id"]
    assert props.correlation_id == answer["correlation_id"]
    assert abs(props.timestamp - time.time()) < 60
    assert props.app_id == f"amqp-sidecar/{uid}"
    assert props.headers["x-sidecar-route"] == "orders"
    assert props.headers["x-tenant"] == "acme"           # listed: crosses, lower-cased
    assert "x-secret" not in props.headers               # not listed: never crosses
    assert props.headers["traceparent"].startswith("00-0af7651916cd43dd")


def test_idempotency_key_and_correlation_id_pass_through(broker, sidecar, uid):
    t = Inbound(broker, sidecar, uid)
    r = t.post(headers={"Idempotency-Key": "order-77", "X-Correlation-ID": "corr-1"})
    assert r.status_code == 202 and r.json()["message_id"] == "order-77"
    [(props, _)] = t.messages()
    assert props.message_id == "order-77" and props.correlation_id == "corr-1"
    assert t.post(headers={"Idempotency-Key": "x" * 300}).status_code == 400


def test_routing_key_placeholders(broker, sidecar, uid):
    t = Inbound(broker, sidecar, uid, routing_key="order.{json.kind}.{header.X-Region}", bind="#")
    assert t.post(b'{"kind": "created"}', headers={"X-Region": "eu"}).status_code == 202
    r = t.post(b'{"other": 1}', headers={"X-Region": "eu"})
    assert r.status_code == 422 and "{json.kind}" in r.json()["error"]
    r = t.post(b'{"kind": "created"}', headers={"X-Region": "e" * 300})
    assert r.status_code == 422 and "AMQP allows 255" in r.json()["error"]
    assert t.post(b'{"kind": "ok"}', headers={"X-Region": "eu"}).status_code == 202  # unharmed
    with broker.channel() as ch:
        m, _, _ = ch.basic_get(t.queue, auto_ack=True)
        assert m.routing_key == "order.created.eu"
        m, _, _ = ch.basic_get(t.queue, auto_ack=True)
        assert m.routing_key == "order.ok.eu"


def test_client_errors(broker, sidecar, uid, tmp_path):
    jq = tmp_path / "orders.jq"
    jq.write_text('if .total < 0 then error("negative total") else {order: .id, total} end')
    t = Inbound(broker, sidecar, uid, f'transform = "{jq}"; max_body = 1000;')
    assert t.post(b'{"id": 1, "total": 5}').status_code == 202
    [(props, body)] = t.messages()
    assert json.loads(body) == {"order": 1, "total": 5}

    r = t.post(b'{"id": ')
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = t.post(b'{"id": 1, "total": -1}')
    assert r.status_code == 422 and "negative total" in r.json()["error"]
    r = t.post(b'x' * 5000)
    assert r.status_code == 413
    r = t.post(iter([b'{"id": "', b'y' * 3000, b'"}']))  # chunked, no Content-Length
    assert r.status_code == 413
    r = t.post(headers={f"X-Filler-{i}": "x" for i in range(120)})  # bounded header count
    assert r.status_code == 431
    r = t.post(headers={"X-Huge": "y" * 40000})                         # bounded header size
    assert r.status_code in (413, 431)
    r = t.post(b"id=1", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415
    assert t.post(content_type=None).status_code == 415
    r = requests.get(t.url, timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = requests.post(t.url.replace("/orders", "/nope"), data=b"{}", timeout=5)
    assert r.status_code == 404
    assert t.messages() == []                      # nothing refused was published
    log = plain(t.sidecar.log())
    assert "route=orders" in log and "→ 422: transform failed" in log


def test_hmac_github_vector(broker, sidecar, uid, tmp_path):
    key = tmp_path / "hmac.key"
    key.write_text(GITHUB_SECRET + "\n")
    os.chmod(key, 0o600)
    t = Inbound(broker, sidecar, uid, f'content_types = ["*/*"]; auth = {{ hmac_secret_file = "{key}"; '
                                      'hmac_header = "X-Hub-Signature-256"; };')
    ok = t.post(GITHUB_BODY, "text/plain", {"X-Hub-Signature-256": GITHUB_SIGNATURE})
    assert ok.status_code == 202
    upper = t.post(GITHUB_BODY, "text/plain", {"X-Hub-Signature-256": GITHUB_SIGNATURE.upper().replace("SHA256", "sha256")})
    assert upper.status_code == 202
    wrong = t.post(GITHUB_BODY + "!", "text/plain", {"X-Hub-Signature-256": GITHUB_SIGNATURE})
    missing = t.post(GITHUB_BODY, "text/plain")
    garbage = t.post(GITHUB_BODY, "text/plain", {"X-Hub-Signature-256": "md5=abc"})
    for r in (wrong, missing, garbage):
        assert r.status_code == 401
        assert r.json() == {"error": "unauthorized"}    # no detail for the caller
    assert len(t.messages()) == 2
    log = plain(t.sidecar.log())
    assert "signature does not match the body" in log and "missing signature header" in log


def _secret(path, text):
    path.write_text(text + "\n")
    os.chmod(path, 0o600)
    return path


def _scheme_route(scheme, *keys, tolerance=None):
    files = ", ".join(f'"{k}"' for k in keys[1:])
    extra = f' hmac_secret_files = [ {files} ];' if files else ""
    extra += f" tolerance = {tolerance};" if tolerance else ""
    return (f'content_types = ["*/*"]; auth = {{ scheme = "{scheme}"; '
            f'hmac_secret_file = "{keys[0]}";{extra} }};')


def _hmac(key, data):
    return hmac.new(key, data, hashlib.sha256)


def test_hmac_stripe(broker, sidecar, uid, tmp_path):
    old = _secret(tmp_path / "old.key", "whsec_old")
    new = _secret(tmp_path / "new.key", "whsec_new")
    t = Inbound(broker, sidecar, uid, _scheme_route("stripe", old, new))
    body = b'{"id": "evt_1"}'

    def sign(key, ts, extra=""):
        v1 = _hmac(key, f"{ts}.".encode() + body).hexdigest()
        return {"Stripe-Signature": f"t={ts},v1={v1}{extra}"}

    now = int(time.time())
    assert t.post(body, headers=sign(b"whsec_old", now)).status_code == 202
    assert t.post(body, headers=sign(b"whsec_new", now)).status_code == 202   # rotated in
    assert t.post(body, headers=sign(b"whsec_other", now)).status_code == 401
    assert t.post(body, headers=sign(b"whsec_old", now - 301)).status_code == 401  # stale
    assert t.post(body, headers=sign(b"whsec_old", now + 400)).status_code == 401  # future
    many = ",v1=" + "0" * 64
    flood = t.post(body, headers=sign(b"whsec_old", now, many * 10000), timeout=10)
    assert flood.status_code in (401, 431)            # bounded, whatever the header size limit
    assert len(t.messages()) == 2
    log = plain(t.sidecar.log())
    assert "timestamp outside tolerance" in log
    # SIGHUP re-reads every file of the list too
    _secret(new, "whsec_newer")
    t.sidecar.proc.send_signal(signal.SIGHUP)
    t.sidecar.wait_log(r"SIGHUP: secret files re-read")
    assert t.post(body, headers=sign(b"whsec_newer", now)).status_code == 202
    assert t.post(body, headers=sign(b"whsec_new", now)).status_code == 401


def test_hmac_slack(broker, sidecar, uid, tmp_path):
    key = _secret(tmp_path / "slack.key", "8f742231b10e8888abcd99yyyzzz85a5")
    t = Inbound(broker, sidecar, uid, _scheme_route("slack", key))
    body = b"token=abc&command=%2Fwebhook-collect"

    def sign(ts, signed_ts=None):
        base = f"v0:{signed_ts or ts}:".encode() + body
        return {"X-Slack-Request-Timestamp": str(ts),
                "X-Slack-Signature": "v0=" + _hmac(b"8f742231b10e8888abcd99yyyzzz85a5", base).hexdigest()}

    now = int(time.time())
    ct = "application/x-www-form-urlencoded"
    assert t.post(body, ct, sign(now)).status_code == 202
    assert t.post(body, ct, sign(now, now + 1)).status_code == 401
    r = t.post(body, ct, sign(now - 3600))
    assert r.status_code == 401 and r.json() == {"error": "unauthorized"}
    assert len(t.messages()) == 1


def test_hmac_shopify(broker, sidecar, uid, tmp_path):
    key = _secret(tmp_path / "shop.key", "shpss_one")
    second = _secret(tmp_path / "shop2.key", "shpss_two")
    t = Inbound(broker, sidecar, uid, _scheme_route("shopify", key, second))
    body = b'{"id":820982911946154508}'

    def sign(k, data=body):
        return {"X-Shopify-Hmac-Sha256": base64.b64encode(_hmac(k, data).digest()).decode()}

    assert t.post(body, headers=sign(b"shpss_one")).status_code == 202
    assert t.post(body, headers=sign(b"shpss_two")).status_code == 202
    assert t.post(body, headers=sign(b"shpss_one", b"{}")).status_code == 401
    assert t.post(body).status_code == 401
    assert len(t.messages()) == 2


def test_hmac_standard_webhook_id_is_the_message_id(broker, sidecar, uid, tmp_path):
    raw_old, raw_new = b"old-key-0123456789abcdef", b"new-key-0123456789abcdef"
    old = _secret(tmp_path / "std.key", "whsec_" + base64.b64encode(raw_old).decode())
    new = _secret(tmp_path / "std2.key", "whsec_" + base64.b64encode(raw_new).decode())
    t = Inbound(broker, sidecar, uid, _scheme_route("standard", old, new))
    body = b'{"type": "invoice.paid"}'

    def sign(k, msg_id, ts):
        sig = base64.b64encode(_hmac(k, f"{msg_id}.{ts}.".encode() + body).digest()).decode()
        return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
                "webhook-signature": f"v1,bm9wZQ== v1,{sig}"}

    now = int(time.time())
    r = t.post(body, headers=sign(raw_old, "msg_2Lq8", now))
    assert r.status_code == 202 and r.json()["message_id"] == "msg_2Lq8"
    r = t.post(body, headers=sign(raw_new, "msg_2Lq9", now))                # rotated in
    assert r.status_code == 202 and r.json()["message_id"] == "msg_2Lq9"
    h = sign(raw_old, "msg_3", now)
    h["Idempotency-Key"] = "mine"
    assert t.post(body, headers=h).json()["message_id"] == "mine"          # the caller's wins
    assert t.post(body, headers=sign(b"whsec_wrong", "msg_4", now)).status_code == 401
    assert t.post(body, headers=sign(raw_old, "msg_5", now - 3600)).status_code == 401
    ids = [props.message_id for props, _ in t.messages()]
    assert ids == ["msg_2Lq8", "msg_2Lq9", "mine"]
    assert "timestamp outside tolerance" in plain(t.sidecar.log())


def test_bearer_token(broker, sidecar, uid, tmp_path):
    token = tmp_path / "token"
    token.write_text("tok-123")
    os.chmod(token, 0o600)
    t = Inbound(broker, sidecar, uid, f'auth = {{ bearer_token_file = "{token}"; }};')
    assert t.post(headers={"Authorization": "Bearer tok-123"}).status_code == 202
    assert t.post(headers={"Authorization": "Bearer tok-124"}).status_code == 401
    assert t.post(headers={"Authorization": "Basic dG9rLTEyMw=="}).status_code == 401
    assert t.post().status_code == 401


def test_unroutable_is_parked_and_answered_routed_false(broker, sidecar, uid):
    t = Inbound(broker, sidecar, uid, routing_key="nobody.listens")
    r = t.post(b'{"id": 9}', headers={"Idempotency-Key": "lonely-1"})
    assert r.status_code == 202 and r.json()["routed"] is False
    assert t.messages() == []
    [(props, body)] = broker.get_all(f"{uid}.orders.dlq")
    assert body == b'{"id": 9}' and props.message_id == "lonely-1"
    assert props.headers["x-sidecar-error"].startswith("unroutable:")
    assert "nobody.listens" in props.headers["x-sidecar-error"]
    assert "parking it in" in t.sidecar.log()


def test_broker_down_503_then_recovers(broker, sidecar, uid):
    t = Inbound(broker, sidecar, uid, extra="")
    assert t.post().status_code == 202
    broker.stop()
    try:
        started = time.monotonic()
        # (a Response is falsy for 4xx/5xx, so wait on a one-element list)
        [r] = wait_for(lambda: (lambda x: [x] if x.status_code == 503 else None)(t.post(timeout=20)),
                       timeout=20, what="503 while the broker is down")
        assert time.monotonic() - started < 15
        assert int(r.headers["Retry-After"]) > 0
        assert "broker" in r.json()["error"]
        assert t.sidecar.readyz().status_code == 503
    finally:
        broker.start()
    wait_for(lambda: t.post().status_code == 202, timeout=40, what="202 after the broker returned")
    assert t.sidecar.readyz().status_code == 200
    assert len(t.messages()) >= 2
    assert t.sidecar.proc.poll() is None            # no restart of the sidecar needed


def test_no_202_is_ever_lost_while_the_broker_dies(broker, sidecar, uid):
    """Concurrent clients while the broker is killed -9 and restarted: every id
    answered 202 is in the queue afterwards; the rest were told to retry."""
    t = Inbound(broker, sidecar, uid)
    accepted, refused = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n):
        session = requests.Session()
        i = 0
        while not stop.is_set():
            key = f"c{n}-{i}"
            i += 1
            try:
                r = session.post(t.url, data=json.dumps({"k": key}), timeout=30,
                                 headers={"Content-Type": "application/json", "Idempotency-Key": key})
                with lock:
                    (accepted if r.status_code == 202 else refused).append((key, r.status_code))
            except requests.RequestException:
                with lock:
                    refused.append((key, 0))
                time.sleep(0.05)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for n in range(16):
            pool.submit(client, n)
        wait_for(lambda: len(accepted) > 300, 30, what="traffic")
        broker.kill()
        time.sleep(1)
        broker.start()
        wait_for(lambda: len(accepted) > 0 and accepted[-1][1] == 202 and
                 t.sidecar.readyz().status_code == 200, 60, what="recovery")
        n_before = len(accepted)
        wait_for(lambda: len(accepted) > n_before + 200, 30, what="traffic after restart")
        stop.set()
    in_queue = {json.loads(body)["k"] for _, body in t.messages()}
    missing = [k for k, _ in accepted if k not in in_queue]
    assert not missing, f"{len(missing)} requests answered 202 are not in the queue: {missing[:5]}"
    assert any(code in (503, 0) for _, code in refused), "the outage was never noticed"


def replier(broker, queue, handle, stop):
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker.port))
    ch = conn.channel()
    while not stop.is_set():
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            conn.sleep(0.02)
            continue
        reply = handle(props, body)
        if reply is not None:
            status, ctype, out = reply
            ch.basic_publish("", props.reply_to, out, pika.BasicProperties(
                correlation_id=props.correlation_id, content_type=ctype,
                headers={"x-http-status": str(status)}))
    conn.close()


def test_rpc_returns_the_reply(broker, sidecar, uid):
    t = Inbound(broker, sidecar, uid, 'mode = "rpc"; timeout = 5.0;')
    stop = threading.Event()
    th = threading.Thread(target=replier, args=(broker, t.queue, lambda p, b: (
        201, "application/json",
        json.dumps({"echo": json.loads(b), "corr": p.headers["x-correlation-id"]})), stop))
    th.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: t.post(json.dumps({"n": i}).encode(),
                                                     headers={"X-Correlation-ID": f"rpc-{i}"}), range(20)))
        for i, r in enumerate(results):
            assert r.status_code == 201
            assert r.headers["Content-Type"] == "application/json"
            assert r.json() == {"echo": {"n": i}, "corr": f"rpc-{i}"}
            assert r.headers["X-Correlation-ID"] == f"rpc-{i}"
    finally:
        stop.set()
        th.join()


def test_rpc_timeout_is_504(broker, sidecar, uid):
    t = Inbound(broker, sidecar, uid, 'mode = "rpc"; timeout = 0.5;')
    started = time.monotonic()
    r = t.post()
    assert r.status_code == 504
    assert 0.4 < time.monotonic() - started < 5
    assert len(t.messages()) == 1   # the request itself was delivered, nobody answered


def test_sigterm_answers_requests_in_flight(broker, sidecar, uid):
    t = Inbound(broker, sidecar, uid)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(t.post, json.dumps({"i": i}).encode()) for i in range(200)]
        time.sleep(0.05)
        t.sidecar.proc.send_signal(15)
        codes = []
        for f in futures:
            try:
                codes.append(f.result().status_code)
            except requests.RequestException:
                codes.append(0)   # refused after the listener closed: never accepted
    assert t.sidecar.stop() == 0
    assert codes.count(202) == len(t.messages())
    assert "draining" in t.sidecar.log()


def test_draining_refuses_new_work_but_reports_and_finishes(broker, sidecar, uid):
    """While SIGTERM drains an rpc request still waiting for its reply: /readyz
    says draining (503), a kept-alive connection gets 503 + Connection: close,
    and the waiting request still gets its answer (504) before exit 0."""
    t = Inbound(broker, sidecar, uid, 'mode = "rpc"; timeout = 3.0;')
    session = requests.Session()
    waiting = session.post(t.url, data=b'{"warm": 1}', headers={"Content-Type": "application/json"},
                           timeout=10)
    assert waiting.status_code == 504                    # nobody replies: warms the connection
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(t.post, b'{"id": 1}')
        wait_for(lambda: t.broker.count(t.queue) >= 2, 10, what="the rpc request published")
        t.sidecar.proc.send_signal(15)
        t.sidecar.wait_log("draining", 10)
        ready = requests.get(t.sidecar.admin + "/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        refused = session.post(t.url, data=b'{"id": 2}', headers={"Content-Type": "application/json"},
                               timeout=10)
        assert refused.status_code == 503 and refused.headers["Connection"] == "close"
        assert pending.result().status_code == 504
    assert t.sidecar.stop() == 0


def test_unroutable_with_its_dlq_gone_is_503_never_202(broker, sidecar, uid):
    """The route's DLQ deleted while the sidecar runs: an unroutable message's parked
    copy is returned too. It is stored nowhere, so the sender must hear 503 (and
    retry), never 202 "routed": false; the connection stays up for the others."""
    t = Inbound(broker, sidecar, uid, routing_key="{header.X-Key}")
    unroutable = {"X-Key": "nobody.listens"}
    r = t.post(b'{"n": 1}', headers=unroutable)
    assert r.status_code == 202 and r.json()["routed"] is False
    broker.ctl("delete_queue", f"{uid}.orders.dlq")
    r = t.post(b'{"n": 2}', headers={**unroutable, "Idempotency-Key": "stored-nowhere"})
    assert r.status_code == 503, r.text
    assert "dead-letter queue" in r.json()["error"]
    assert int(r.headers["Retry-After"]) > 0
    log = plain(t.sidecar.log())
    assert f"the dead-letter queue {uid}.orders.dlq did not take the unroutable message" in log
    # routable messages still flow on the same connection
    assert t.post(b'{"n": 3}', headers={"X-Key": "order.created"}).status_code == 202
    assert [json.loads(b)["n"] for _, b in t.messages()] == [3]
    assert "connection lost" not in log


def test_rpc_replies_reach_only_their_own_caller(broker, sidecar, uid):
    """Two callers in flight with the same X-Correlation-ID each get their own reply
    (replies are matched on a call id the sidecar made, not the caller's id), and a
    duplicate reply that nobody waits for is dropped and counted."""
    t = Inbound(broker, sidecar, uid, 'mode = "rpc"; timeout = 10.0;')
    seen = []
    stop = threading.Event()

    def answer_both_in_arrival_order():
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker.port))
        ch = conn.channel()
        while len(seen) < 2 and not stop.is_set():
            method, props, body = ch.basic_get(t.queue, auto_ack=True)
            if method is None:
                conn.sleep(0.02)
            else:
                seen.append((props, body))
        for props, body in seen + seen[:1]:  # the first one twice: a duplicate reply
            ch.basic_publish("", props.reply_to, body, pika.BasicProperties(
                correlation_id=props.correlation_id, content_type="application/json"))
        conn.close()

    th = threading.Thread(target=answer_both_in_arrival_order)
    th.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            calls = {who: pool.submit(t.post, json.dumps({"who": who}).encode(),
                                      headers={"X-Correlation-ID": "same-id"})
                     for who in ("alice", "bob")}
            answers = {who: f.result() for who, f in calls.items()}
    finally:
        stop.set()
        th.join()
    for who, r in answers.items():
        assert r.status_code == 200, r.text
        assert r.json() == {"who": who}, f"{who} got someone else's reply"
        assert r.headers["X-Correlation-ID"] == "same-id"
    # what the replier saw: our call ids (distinct), the caller's id kept for tracing
    ids = [p.correlation_id for p, _ in seen]
    assert len(set(ids)) == 2 and "same-id" not in ids
    assert all(p.headers["x-correlation-id"] == "same-id" for p, _ in seen)

    def unmatched():
        text = requests.get(t.sidecar.admin + "/metrics", timeout=5).text
        return re.search(r"^amqp_sidecar_rpc_replies_unmatched_total (\d+)$", text, re.M)
    wait_for(lambda: (m := unmatched()) and int(m[1]) == 1, 10, what="the duplicate counted")


def test_overlong_content_type_fails_that_request_only(broker, sidecar, uid):
    """A Content-Type AMQP cannot carry (over 255 bytes) is refused for that request
    alone: concurrent senders keep getting 202, the shared connection stays up."""
    t = Inbound(broker, sidecar, uid, 'content_types = ["*/*"];')
    hostile = "application/json; x=" + "a" * 300
    stop = threading.Event()
    codes = []

    def innocent():
        session = requests.Session()
        while not stop.is_set():
            r = session.post(t.url, data=b'{"ok": 1}', timeout=10,
                             headers={"Content-Type": "application/json"})
            codes.append(r.status_code)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(innocent)
        wait_for(lambda: len(codes) > 50, 20, what="innocent traffic")
        bad = [t.post(content_type=hostile) for _ in range(5)]
        n = len(codes)
        wait_for(lambda: len(codes) > n + 50, 20, what="traffic after the hostile requests")
        stop.set()
    assert [r.status_code for r in bad] == [415] * 5
    assert "255" in bad[0].json()["error"]
    assert set(codes) == {202}, f"innocent requests failed: {sorted(set(codes))}"
    assert "connection lost" not in t.sidecar.log()
    metrics = requests.get(t.sidecar.admin + "/metrics", timeout=5).text
    assert "amqp_sidecar_broker_connections_lost_total 0" in metrics
