"""End-to-end: the http outbound kind (AMQP → legacy REST) against a real
RabbitMQ and a real scripted HTTP server, plus `amqp-sidecar replay`.

Each test asserts on what arrived where: requests the legacy server saw
(body, headers, timing), and what is left in the work queue, its retry
queues and its dead-letter queue (with x-sidecar-* headers).
"""
import json
import os
import signal
import time

import pika
import pytest
import requests

from conftest import free_port, run_cli, wait_for
from http_poll_helpers import (Response, header_int, json_response, legacy_server, peek_all,
                               publish_many)

FAST_RETRY = "retry = { delays = [0.2, 0.4]; };"


def out_route(route, url, extra=""):
    if "circuit" not in extra:
        extra += " circuit = { failures = 0; };"  # only the breaker test wants it
    return f'{{ name = "{route}"; kind = "http"; url = "{url}"; {extra} }}'


def start(sidecar, uid, route, url, extra=FAST_RETRY, top=""):
    s = sidecar(name=uid, outbound=out_route(route, url, extra), extra=top)
    return s, f"{uid}.{route}"


def wait_empty(broker, queue, timeout=10):
    wait_for(lambda: broker.count(queue) == 0, timeout, what=f"{queue} to drain")


def test_http_out_delivers_body_and_headers(broker, sidecar, uid):
    with legacy_server() as api:
        api.default = json_response(201, {"id": 1})
        s, q = start(sidecar, uid, "customers", api.url("/api/customers"),
                     FAST_RETRY + ' pass_headers = ["X-Tenant"]; '
                                  'headers = { X-Api-Version = "2"; };')
        body = json.dumps({"name": "Ada", "amount": "12.50"}).encode()
        broker.publish("", q, body, message_id="m-1", correlation_id="c-1",
                       content_type="application/json",
                       headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-"
                                               "b7ad6b7169203331-01",
                                "x-tenant": "acme", "x-secret": "do-not-leak"})
        req = api.wait_requests(1)[0]
        assert req.method == "POST" and req.path == "/api/customers"
        assert req.body == body
        assert req.header("Content-Type") == "application/json"
        assert req.header("Idempotency-Key") == "m-1"
        assert req.header("X-Correlation-ID") == "c-1"
        assert req.header("traceparent").startswith("00-0af7651916cd43dd8448eb211c80319c-")
        assert req.header("X-Tenant") == "acme"
        assert req.header("X-Api-Version") == "2"
        assert req.header("x-secret") is None  # only pass_headers cross
        assert s.stop() == 0
        time.sleep(0.3)
        assert len(api.snapshot()) == 1
        assert broker.count(q) == 0  # acked: nothing came back on close
        assert broker.count(q + ".dlq") == 0


def test_http_out_derived_idempotency_key_and_url_placeholders(broker, sidecar, uid):
    with legacy_server() as api:
        api.push(Response(503, "busy"), json_response(200, {}))
        s, q = start(sidecar, uid, "put", api.url("/api/items/{header.x-item}?c={correlation_id}"),
                     FAST_RETRY + ' method = "PUT";')
        # No message_id: the key must be derived, and the same on the retry.
        broker.publish("", q, b'{"v":1}', correlation_id="a b/c", content_type="application/json",
                       headers={"x-item": "sku 42/7"})
        reqs = api.wait_requests(2)
        assert [r.method for r in reqs] == ["PUT", "PUT"]
        assert reqs[0].raw_path == "/api/items/sku%2042%2F7?c=a%20b%2Fc"
        k1, k2 = reqs[0].header("Idempotency-Key"), reqs[1].header("Idempotency-Key")
        assert k1 and k1.startswith("sha256:") and len(k1) == 7 + 64
        assert k1 == k2
        wait_empty(broker, q)
        s.stop()
        assert broker.count(q) == 0 and broker.count(q + ".dlq") == 0


def test_http_out_retries_5xx_then_acks_once(broker, sidecar, uid):
    with legacy_server() as api:
        api.push(Response(503, "down"), Response(503, "still down"),
                 json_response(201, {"ok": True}))
        s, q = start(sidecar, uid, "orders", api.url(),
                     FAST_RETRY + ' pass_headers = ["x-sidecar-attempts"];')
        broker.publish("", q, b'{"n":1}', message_id="ord-1", content_type="application/json")
        reqs = api.wait_requests(3)
        assert [r.header("Idempotency-Key") for r in reqs] == ["ord-1"] * 3
        # the attempts header shows the count of earlier legacy calls, grown by one each round
        assert [r.header("x-sidecar-attempts") for r in reqs] == [None, "1", "2"]
        # the ladder's delays were waited (0.2 then 0.4 seconds)
        assert reqs[1].at - reqs[0].at >= 0.18
        assert reqs[2].at - reqs[1].at >= 0.38
        time.sleep(0.8)
        assert len(api.snapshot()) == 3  # delivered once, not again
        s.stop()
        assert broker.count(q) == 0
        assert broker.count(q + ".dlq") == 0
        assert broker.count(q + ".retry.1") == 0 and broker.count(q + ".retry.2") == 0
        assert "attempt 1 failed" in s.log() and "retrying in 0.2s" in s.log()


def test_http_out_4xx_dead_letters_at_once(broker, sidecar, uid):
    with legacy_server() as api:
        long_tail = "\n".join(["x" * 80] * 20)
        api.default = Response(400, '{"error":"customer id missing"}\r\n' + long_tail,
                               {"Content-Type": "application/json"})
        s, q = start(sidecar, uid, "customers", api.url())
        body = b'{"name":"no id"}'
        broker.publish("", q, body, message_id="bad-1", correlation_id="corr-bad",
                       content_type="application/json", headers={"x-origin": "crm"})
        api.wait_requests(1)
        wait_for(lambda: broker.count(q + ".dlq") == 1, 10, what="dead letter")
        time.sleep(0.6)  # longer than the whole ladder: no retry may follow
        assert len(api.snapshot()) == 1
        (props, got), = broker.get_all(q + ".dlq")
        assert got == body
        assert props.message_id == "bad-1" and props.correlation_id == "corr-bad"
        assert props.content_type == "application/json"
        h = props.headers
        assert h["x-origin"] == "crm"
        assert h["x-sidecar-route"] == "customers"
        assert header_int(props, "x-sidecar-attempts") == 1
        err = h["x-sidecar-error"]
        assert err.startswith("HTTP 400 from POST http://127.0.0.1:")
        assert 'customer id missing' in err
        assert "\n" not in err and "\r" not in err
        excerpt = err.split(": ", 1)[1]
        assert len(excerpt.encode()) <= 203  # 200 bytes and "..."
        assert excerpt.endswith("...")
        s.stop()
        assert broker.count(q) == 0


def test_http_out_always_500_exhausts_ladder(broker, sidecar, uid):
    with legacy_server() as api:
        api.default = Response(500, "boom")
        s, q = start(sidecar, uid, "orders", api.url())
        publish_many(broker, q, [(b'{"i":%d}' % i, {"message_id": f"m{i}"}) for i in range(3)])
        wait_for(lambda: broker.count(q + ".dlq") == 3, 15, what="3 dead letters")
        dead = broker.get_all(q + ".dlq")
        assert sorted(p.message_id for p, _ in dead) == ["m0", "m1", "m2"]
        for props, _ in dead:
            assert header_int(props, "x-sidecar-attempts") == 3  # 1 call + 2 retries
            assert props.headers["x-sidecar-error"].startswith("gave up after 3 attempts: HTTP 500")
        by_id = {}
        for r in api.snapshot():
            by_id.setdefault(r.header("Idempotency-Key"), []).append(r)
        assert {k: len(v) for k, v in by_id.items()} == {"m0": 3, "m1": 3, "m2": 3}
        s.stop()
        assert broker.count(q) == 0


def test_http_out_honours_retry_after(broker, sidecar, uid):
    with legacy_server() as api:
        api.push(Response(429, "slow down", {"Retry-After": "1"}), json_response(200, {}))
        # Without Retry-After the first retry would come after 0.1s; the legacy side
        # asks for 1s, so the first step of the ladder long enough (1.2s) is used.
        s, q = start(sidecar, uid, "orders", api.url(), "retry = { delays = [0.1, 1.2, 3.0]; };")
        broker.publish("", q, b"{}", message_id="ra-1")
        reqs = api.wait_requests(2, timeout=10)
        gap = reqs[1].at - reqs[0].at
        assert 1.0 <= gap < 2.9, gap
        assert "via " + q + ".retry.2" in s.log()
        s.stop()
        assert broker.count(q) == 0 and broker.count(q + ".dlq") == 0


@pytest.mark.parametrize("ordered", [False, True], ids=["ladder", "ordered"])
@pytest.mark.parametrize("value", ["1e999", "inf", "nan"])
def test_http_out_retry_after_not_a_number_walks_the_ladder(broker, sidecar, uid, value, ordered):
    """Retry-After: 1e999 (or inf, nan) is neither delay-seconds nor a date, so it is
    absent: each retry waits its own step. It used to jump to the longest step (60 s
    here), and on ordered routes to retry at once in a hot loop (inf cast to a timer)."""
    with legacy_server() as api:
        api.push(*[Response(503, "busy", {"Retry-After": value})] * 3, json_response(200, {}))
        extra = "retry = { delays = [0.5, 0.5, 0.5, 60.0]; };" + (" ordered = true;" * ordered)
        s, q = start(sidecar, uid, "orders", api.url(), extra)
        broker.publish("", q, b"{}", message_id="ra-" + value)
        reqs = api.wait_requests(4, timeout=20)
        gaps = [round(b.at - a.at, 3) for a, b in zip(reqs, reqs[1:])]
        assert all(g >= 0.4 for g in gaps), gaps  # every step of the ladder waited
        wait_empty(broker, q)
        time.sleep(1.0)
        assert len(api.snapshot()) == 4  # delivered at the 4th call, no call since
        s.stop()
        assert broker.count(q) == 0 and broker.count(q + ".dlq") == 0


@pytest.mark.parametrize("value", ["86400", "9" * 40, "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_http_out_ordered_huge_retry_after_holds_the_line_no_longer_than_the_ladder(
        broker, sidecar, uid, value):
    """An ordered route holds every later message while it retries one in place: a
    Retry-After of a day (a digit string past any integer, a date in 9999) waits only
    the route's longest retry delay, as the retry queues would; not a day, and not at
    once either (the digit string was once an undefined cast to a negative timer)."""
    with legacy_server() as api:
        api.push(Response(503, "maintenance", {"Retry-After": value}))  # then 200s
        s, q = start(sidecar, uid, "ledger", api.url(),
                     "ordered = true; retry = { delays = [0.2, 1.5]; };")
        publish_many(broker, q, [(json.dumps({"n": i}).encode(), {"message_id": f"h{i}"})
                                 for i in (1, 2)])
        reqs = api.wait_requests(3, timeout=20)
        assert [r.json()["n"] for r in reqs] == [1, 1, 2]
        gap = reqs[1].at - reqs[0].at
        assert 1.3 <= gap < 15, gap  # the longest step, 1.5 s
        assert "retrying in 1.5s, holding the line" in s.log()
        wait_empty(broker, q)
        s.stop()
        assert broker.count(q) == 0 and broker.count(q + ".dlq") == 0


def test_http_out_connection_refused_retries_until_up(broker, sidecar, uid):
    port = free_port()  # nothing listens here yet
    s, q = start(sidecar, uid, "orders", f"http://127.0.0.1:{port}/api",
                 "retry = { delays = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]; };")
    broker.publish("", q, b'{"x":1}', message_id="refused-1")
    s.wait_log(r"attempt 1 failed \(POST http://127\.0\.0\.1:%d/api failed: .*"
               r"(refused|Failed to connect)" % port)
    with legacy_server(port) as api:
        req = api.wait_requests(1, timeout=10)[0]
        assert req.header("Idempotency-Key") == "refused-1"
        wait_empty(broker, q)
        s.stop()
    assert broker.count(q) == 0 and broker.count(q + ".dlq") == 0


def test_http_out_timeout_retries(broker, sidecar, uid):
    with legacy_server() as api:
        api.push(Response(200, "late", delay=1.5), json_response(201, {}))
        s, q = start(sidecar, uid, "orders", api.url(),
                     'timeout = 0.5; retry = { delays = [0.2, 0.4]; };')
        broker.publish("", q, b'{"t":1}', message_id="slow-1")
        reqs = api.wait_requests(2, timeout=10)
        assert [r.header("Idempotency-Key") for r in reqs] == ["slow-1", "slow-1"]
        s.wait_log(r"attempt 1 failed \(POST \S+ timed out after 0\.5s")
        time.sleep(1.5)  # the late answer to the first call changes nothing
        s.stop()
        assert broker.count(q) == 0 and broker.count(q + ".dlq") == 0
        assert len(api.snapshot()) == 2


def test_http_out_transform_error_dead_letters(broker, sidecar, uid, tmp_path):
    jq = tmp_path / "customer.jq"
    jq.write_text('if .fail then error("no customer in \\(.ref)") else {id: .id, src: "crm"} end\n')
    with legacy_server() as api:
        s, q = start(sidecar, uid, "customers", api.url(),
                     FAST_RETRY + f' transform = "{jq}";')
        broker.publish("", q, b'{"fail": true, "ref": "r-9"}', message_id="tf-bad",
                       content_type="application/json")
        broker.publish("", q, b'{"id": 7}', message_id="tf-good", content_type="text/plain")
        req = api.wait_requests(1)[0]
        assert req.json() == {"id": 7, "src": "crm"}
        assert req.header("Content-Type") == "application/json"  # the transform made JSON
        wait_for(lambda: broker.count(q + ".dlq") == 1, 10, what="dead letter")
        (props, body), = broker.get_all(q + ".dlq")
        assert body == b'{"fail": true, "ref": "r-9"}'
        assert props.message_id == "tf-bad"
        assert props.headers["x-sidecar-error"] == "transform failed: no customer in r-9"
        assert header_int(props, "x-sidecar-attempts") == 0  # the legacy side was never called
        time.sleep(0.5)
        assert len(api.snapshot()) == 1
        s.stop()


def test_http_out_circuit_breaker_opens_and_closes(broker, sidecar, uid):
    with legacy_server() as api:
        api.default = Response(503, "maintenance")
        s, q = start(sidecar, uid, "orders", api.url(),
                     "concurrency = 1; retry = { delays = [0.5, 0.5, 0.5, 0.5]; }; "
                     "circuit = { failures = 2; cooldown = 2.0; };")
        publish_many(broker, q, [(b'{"i":%d}' % i, {"message_id": f"c{i}"}) for i in range(4)])
        s.wait_log(r"circuit open after 2 consecutive failures")
        seen_at_open = len(api.snapshot())
        assert seen_at_open == 2
        r = s.readyz()
        assert r.status_code == 503
        assert "circuit open" in r.json()["routes"]["orders"]["detail"]
        time.sleep(1.0)
        assert len(api.snapshot()) == 2  # no calls while open
        # every message waits in the broker (2 back from their retry queue, 2 never taken)
        wait_for(lambda: broker.count(q) == 4, 5, what="4 messages parked in the queue")
        before = len(api.snapshot())
        api.default = json_response(200, {})
        s.wait_log(r"circuit half-open", timeout=5)
        s.wait_log(r"circuit closed", timeout=5)
        wait_for(lambda: {x.header("Idempotency-Key") for x in api.snapshot()[before:]}
                 == {"c0", "c1", "c2", "c3"}, 10, what="all four delivered")
        wait_for(lambda: s.readyz().status_code == 200, 5, what="/readyz 200 again")
        wait_empty(broker, q)
        s.stop()
        assert broker.count(q) == 0 and broker.count(q + ".dlq") == 0


def test_http_out_reply_to_gets_response(broker, sidecar, uid):
    with legacy_server() as api:
        api.default = json_response(201, {"customer_id": 42})
        s, q = start(sidecar, uid, "rpc", api.url())
        with broker.channel() as ch:
            reply_q = ch.queue_declare("", exclusive=True).method.queue
            ch.confirm_delivery()
            ch.basic_publish("", q, b'{"name":"Ada"}', pika.BasicProperties(
                delivery_mode=2, reply_to=reply_q, correlation_id="corr-rpc", message_id="rpc-1",
                content_type="application/json"), mandatory=True)
            got = None
            deadline = time.monotonic() + 10
            while got is None and time.monotonic() < deadline:
                method, props, body = ch.basic_get(reply_q, auto_ack=True)
                if method:
                    got = (props, body)
                else:
                    time.sleep(0.05)
            assert got is not None, "no reply arrived"
            props, body = got
            assert json.loads(body) == {"customer_id": 42}
            assert props.correlation_id == "corr-rpc"
            assert props.content_type == "application/json"
            assert str(props.headers["x-http-status"]) == "201"
        s.stop()
        assert broker.count(q) == 0


def test_http_out_rejection_reaches_the_rpc_caller_and_the_dlq(broker, sidecar, uid):
    """A 4xx is final: the caller waiting on reply_to gets it at once (x-http-status 422,
    the legacy body), and the request is dead-lettered with the reason."""
    with legacy_server() as api:
        api.default = json_response(422, {"error": "vat number invalid"})
        s, q = start(sidecar, uid, "rpc", api.url())
        with broker.channel() as ch:
            reply_q = ch.queue_declare("", exclusive=True).method.queue
            ch.confirm_delivery()
            ch.basic_publish("", q, b'{"vat":"x"}', pika.BasicProperties(
                delivery_mode=2, reply_to=reply_q, correlation_id="corr-422", message_id="rpc-2",
                content_type="application/json"), mandatory=True)
            got = wait_for(lambda: (lambda m: m if m[0] else None)(ch.basic_get(reply_q, auto_ack=True)),
                           10, what="the rejection as a reply")
        _, props, body = got
        assert json.loads(body) == {"error": "vat number invalid"}
        assert props.correlation_id == "corr-422"
        assert str(props.headers["x-http-status"]) == "422"
        wait_for(lambda: broker.count(f"{q}.dlq") == 1, 10, what="the dead letter")
        [(dprops, dbody)] = peek_all(broker, f"{q}.dlq")
        assert dbody == b'{"vat":"x"}' and "HTTP 422" in dprops.headers["x-sidecar-error"]
        assert len(api.snapshot()) == 1
        s.stop()


def test_http_out_ordered_keeps_order_under_retry(broker, sidecar, uid):
    failed_once = set()

    def handler(req):
        n = req.json()["n"]
        if n == 2 and n not in failed_once:
            failed_once.add(n)
            return Response(503, "hiccup")
        return json_response(200, {})

    with legacy_server() as api:
        api.handler = handler
        s, q = start(sidecar, uid, "ledger", api.url(),
                     "ordered = true; concurrency = 8; retry = { delays = [0.3, 0.3]; };")
        assert broker.queue_arguments(q).get("x-single-active-consumer") is True
        publish_many(broker, q, [(json.dumps({"n": i}).encode(), {"message_id": f"o{i}"})
                                 for i in range(1, 7)])
        api.wait_requests(7)
        seq = [r.json()["n"] for r in api.snapshot()]
        assert seq == [1, 2, 2, 3, 4, 5, 6]  # the retry held the line
        assert "holding the line" in s.log()
        s.stop()
        assert broker.count(q) == 0 and broker.count(q + ".dlq") == 0


def test_http_out_replay_moves_dead_letters_back(broker, sidecar, uid):
    with legacy_server() as api:
        api.default = Response(422, '{"error":"invalid"}')
        s, q = start(sidecar, uid, "orders", api.url(),
                     FAST_RETRY + ' pass_headers = ["x-sidecar-attempts", "x-sidecar-replayed-from"];')
        publish_many(broker, q, [(b'{"i":%d}' % i, {"message_id": f"r{i}",
                                                    "headers": {"x-keep": "yes"}})
                                 for i in range(5)])
        wait_for(lambda: broker.count(q + ".dlq") == 5, 10, what="5 dead letters")
        s.stop()
        dlq = q + ".dlq"

        r = run_cli("replay", "-c", s.config_path, "orders", "--dry-run")
        assert r.returncode == 0, r.stderr
        assert f"5 message(s) in {dlq}; would move 5 to {q}" in r.stdout
        assert "message_id=r0 attempts=1 error=HTTP 422" in r.stdout
        time.sleep(0.3)
        assert broker.count(dlq) == 5 and broker.count(q) == 0  # dry run moved nothing

        r = run_cli("replay", "-c", s.config_path, "orders", "--max", "2")
        assert r.returncode == 0, r.stderr
        assert f"moved 2 message(s) from {dlq} to {q}; 3 left in {dlq}" in r.stdout
        assert broker.count(dlq) == 3 and broker.count(q) == 2
        for props, body in peek_all(broker, q):
            h = props.headers or {}
            assert "x-sidecar-attempts" not in h and "x-sidecar-error" not in h
            assert "x-death" not in h
            assert h["x-sidecar-replayed-from"] == dlq
            assert h["x-keep"] == "yes"
            assert props.message_id in {f"r{i}" for i in range(5)}
            assert json.loads(body)["i"] in range(5)

        r = run_cli("replay", "-c", s.config_path, "orders")
        assert r.returncode == 0, r.stderr
        assert f"moved 3 message(s) from {dlq} to {q}; 0 left in {dlq}" in r.stdout
        assert broker.count(dlq) == 0 and broker.count(q) == 5

        # The legacy side is fixed: a new sidecar delivers every replayed message,
        # counting attempts from zero again.
        before = len(api.snapshot())
        api.default = json_response(200, {})
        s2 = sidecar(text=open(s.config_path).read())
        wait_empty(broker, q)
        new = api.snapshot()[before:]
        assert sorted(x.header("Idempotency-Key") for x in new) == [f"r{i}" for i in range(5)]
        assert all(x.header("x-sidecar-attempts") is None for x in new)
        assert all(x.header("x-sidecar-replayed-from") == dlq for x in new)
        s2.stop()
        assert broker.count(dlq) == 0


def test_http_out_replay_many_in_batches(broker, sidecar, uid):
    """Hundreds of dead letters: several batches, confirms racing the reads."""
    with legacy_server() as api:
        s, q = start(sidecar, uid, "orders", api.url())
        s.stop()  # the topology exists; nothing consumes now
        n = 600
        publish_many(broker, q + ".dlq", [(b"%d" % i, {"message_id": f"d{i}", "headers": {
            "x-sidecar-attempts": 3, "x-sidecar-error": "HTTP 500"}}) for i in range(n)])
        r = run_cli("replay", "-c", s.config_path, "orders", "--max", "550")
        assert r.returncode == 0, r.stderr
        assert f"moved 550 message(s) from {q}.dlq to {q}; 50 left in {q}.dlq" in r.stdout
        assert broker.count(q) == 550 and broker.count(q + ".dlq") == 50
        got = broker.get_all(q)
        assert len({p.message_id for p, _ in got}) == 550  # each once
        assert all("x-sidecar-attempts" not in (p.headers or {}) for p, _ in got)


def test_http_out_replay_refuses_unknown_route(broker, sidecar, uid):
    with legacy_server() as api:
        s, q = start(sidecar, uid, "orders", api.url())
        s.stop()
        r = run_cli("replay", "-c", s.config_path, "nope")
        assert r.returncode == 2
        assert "nope" in r.stderr


def test_http_out_sigkill_midflight_loses_nothing(broker, sidecar, uid):
    n = 300
    with legacy_server() as api:
        api.delay = 0.1
        s, q = start(sidecar, uid, "bulk", api.url(), "concurrency = 32; " + FAST_RETRY)
        publish_many(broker, q, [(b'{"i":%d}' % i, {"message_id": f"k{i}"}) for i in range(n)])
        api.wait_requests(60, timeout=20)
        s.proc.send_signal(signal.SIGKILL)
        s.kill()
        s2 = sidecar(text=open(s.config_path).read())
        wait_for(lambda: len({r.header("Idempotency-Key") for r in api.snapshot()}) == n, 60,
                 what=f"all {n} ids at the legacy server")
        wait_empty(broker, q, 20)
        s2.stop()
        ids = [r.header("Idempotency-Key") for r in api.snapshot()]
        assert set(ids) == {f"k{i}" for i in range(n)}
        assert broker.count(q) == 0 and broker.count(q + ".dlq") == 0
        # at-least-once: the calls cut short by the kill may repeat, nothing else
        assert len(ids) - n <= 64


def test_http_out_sigterm_finishes_inflight_call(broker, sidecar, uid):
    with legacy_server() as api:
        api.default = Response(200, "ok", delay=1.0)
        s, q = start(sidecar, uid, "orders", api.url())
        broker.publish("", q, b'{"d":1}', message_id="drain-1")
        api.wait_requests(1)
        t0 = time.monotonic()
        assert s.stop() == 0
        assert time.monotonic() - t0 >= 0.5  # it waited for the answer
        assert broker.count(q) == 0  # acked before the connection closed
        assert len(api.snapshot()) == 1


def test_http_out_check_rejects_bad_config(broker, uid, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text(f'''name = "{uid}";
broker = {{ url = "{broker.url}"; }};
outbound = (
  {{ name = "a"; kind = "http"; url = "http://127.0.0.1:1/x/{{nope}}"; }},
  {{ name = "b"; kind = "http"; url = "ftp://example/"; }},
  {{ name = "c"; kind = "http"; url = "http://h/"; method = "TRACE";
     headers = {{ X-Ok = "line\\nbreak"; }}; }},
  {{ name = "d"; kind = "http"; }}
);
''')
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 2
    err = r.stderr
    assert "unknown placeholder {nope}" in err
    assert "must be an http:// or https:// URL" in err
    assert 'method = "TRACE" is not one of' in err
    assert "headers.X-Ok holds a control character" in err
    assert 'outbound route "d": missing required key "url"' in err


def test_http_out_ordered_retry_does_not_hold_up_shutdown(broker, sidecar, uid):
    """An ordered route waiting 60 s to retry in place: SIGTERM puts the message
    back at the head of the queue and exits at once, without calling again."""
    with legacy_server() as api:
        api.default = json_response(503, {"busy": True})
        s, q = start(sidecar, uid, "ledger", api.url("/api/ledger"),
                     "ordered = true; retry = { delays = [60]; };")
        broker.publish("", q, b'{"n": 1}', message_id="only")
        api.wait_requests(1)
        s.wait_log("holding the line", timeout=10)
        started = time.monotonic()
        assert s.stop() == 0
        assert time.monotonic() - started < 10
        assert len(api.snapshot()) == 1
        [(props, body)] = peek_all(broker, q)
        assert props.message_id == "only" and body == b'{"n": 1}'


def test_http_out_reply_with_overlong_content_type_is_acked_once(broker, sidecar, uid):
    """A legacy 2xx whose Content-Type AMQP cannot carry (over 255 bytes) must not
    break the connection and loop the delivery: the reply goes out once, as
    application/octet-stream, and the delivery is acked."""
    with legacy_server() as api:
        api.default = Response(200, b'{"ok": true}',
                               {"Content-Type": "application/json; x=" + "a" * 300})
        s, q = start(sidecar, uid, "rpc", api.url())
        with broker.channel() as ch:
            reply_q = ch.queue_declare("", exclusive=True).method.queue
            ch.confirm_delivery()
            ch.basic_publish("", q, b'{"n": 1}', pika.BasicProperties(
                delivery_mode=2, reply_to=reply_q, correlation_id="corr-long",
                content_type="application/json"), mandatory=True)
            got = None
            deadline = time.monotonic() + 10
            while got is None and time.monotonic() < deadline:
                method, props, body = ch.basic_get(reply_q, auto_ack=True)
                got = (props, body) if method else None
                time.sleep(0 if got else 0.05)
            assert got is not None, "no reply arrived"
            props, body = got
            assert body == b'{"ok": true}' and props.correlation_id == "corr-long"
            assert props.content_type == "application/octet-stream"
        time.sleep(2)  # a poison loop would keep calling the legacy side meanwhile
        assert len(api.snapshot()) == 1
        wait_empty(broker, q)
        assert broker.count(q + ".dlq") == 0
        assert "connection lost" not in s.log()
