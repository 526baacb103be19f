"""End-to-end: rate = { … } on the routes that call the legacy side, against a
real RabbitMQ and legacy servers (python, here) that keep their own log of
request times.

Every rate is counted from the server's log, never timed on the sidecar: how
many requests arrived in a window, and that no window of one second held more
than the token bucket allows. A Retry-After pause is checked the same way: the
server saw nothing while it had asked to be left alone, and the call it refused
came first after it.
"""
import json
import re
import threading
import time

import requests

from conftest import wait_for
from http_poll_helpers import Response, json_response, legacy_server, publish_many
from test_poll_in import setup  # noqa: F401  (the exchange, bound queue and state dir)


def out_route(route, url, extra, kind="http"):
    return (f'{{ name = "{route}"; kind = "{kind}"; url = "{url}"; '
            f'circuit = {{ failures = 0; }}; {extra} }}')


def max_in_window(times, seconds=1.0):
    """The most requests that fell in any window of `seconds`, from the server's log."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - seconds:
            j += 1
        best = max(best, i - j + 1)
    return best


def metric(sidecar, name, route):
    text = requests.get(sidecar.admin + "/metrics", timeout=5).text
    m = re.search(rf'^amqp_sidecar_{name}\{{route="{route}",[^}}]*\}} (\S+)$', text, re.M)
    assert m, f"no {name} for {route} in /metrics"
    return float(m[1])


class QuotaApi:
    """A legacy API with a quota: at most `quota` requests in any trailing second
    (it counts them itself), else 429 with Retry-After: 1. Logs every request as
    (time, Idempotency-Key, status)."""

    def __init__(self, server, quota):
        self.quota = quota
        self.log = []
        self.lock = threading.Lock()
        server.handler = self.handle

    def handle(self, req):
        with self.lock:
            recent = sum(1 for t, _, st in self.log if st < 300 and t > req.at - 1.0)
            status = 429 if recent >= self.quota else 200
            self.log.append((req.at, req.header("Idempotency-Key"), status))
        if status == 429:
            return Response(429, "quota exceeded", {"Retry-After": "1"})
        return json_response(200, {"ok": True})

    def accepted(self):
        with self.lock:
            return [key for _, key, st in self.log if st == 200]

    def times(self):
        with self.lock:
            return [t for t, _, _ in self.log]


def test_http_out_rate_holds_per_second_over_20s(broker, sidecar, uid):
    """The issue's acceptance test: 10/s for 20 s against an API that counts."""
    with legacy_server() as server:
        api = QuotaApi(server, quota=10 + 2 + 2)  # the bucket's bound, and a little slack
        # A 429 sent to the ladder would wait 60 s: it would show as a missing message.
        s = sidecar(name=uid, outbound=out_route(
            "crm", server.url(), "concurrency = 8; retry = { delays = [60]; }; "
            "rate = { per_second = 10.0; burst = 2; };"))
        q = f"{uid}.crm"
        ids = [f"m-{i}" for i in range(230)]  # 23 s of work at 10/s
        publish_many(broker, q, [(b"{}", {"message_id": i}) for i in ids])
        wait_for(lambda: set(api.accepted()) == set(ids), 60, interval=0.5,
                 what="every message accepted")
        times = sorted(api.times())
        first = times[0]
        in_20s = sum(1 for t in times if t < first + 20.0)
        assert 190 <= in_20s <= 210, f"{in_20s} requests in the first 20 s, wanted 200 ± 5 %"
        assert max_in_window(times) <= 10 + 2 + 1, "more in one second than the bucket allows"
        accepted = api.accepted()
        assert sorted(set(accepted)) == sorted(ids)  # every one, repeats only of the same id
        assert broker.count(q + ".dlq") == 0 and broker.count(q + ".retry.1") == 0
        assert metric(s, "retries_total", "crm") == 0
        assert metric(s, "throttle_state", "crm") == 0  # nothing waits any more
        s.stop()
        assert broker.count(q) == 0


class PausingApi:
    """Answers 200, except the `nth` request: 429 with Retry-After: 2, and from then
    on 429 to anything that arrives within those 2 s."""

    def __init__(self, server, nth, status=429):
        self.nth, self.status = nth, status
        self.log = []
        self.refused_at = None
        self.lock = threading.Lock()
        server.handler = self.handle

    def handle(self, req):
        with self.lock:
            n = len(self.log) + 1
            if n == self.nth:
                self.refused_at = req.at
            refuse = self.refused_at is not None and req.at < self.refused_at + 2.0
            self.log.append((req.at, req.header("Idempotency-Key"), 429 if refuse else 200))
        if refuse:
            return Response(self.status, "slow down", {"Retry-After": "2"})
        return json_response(200, {"ok": True})

    def snapshot(self):
        with self.lock:
            return list(self.log), self.refused_at


def test_http_out_retry_after_pauses_the_whole_route(broker, sidecar, uid):
    with legacy_server() as server:
        api = PausingApi(server, nth=6)
        s = sidecar(name=uid, outbound=out_route(
            "crm", server.url(), "concurrency = 4; retry = { delays = [60]; }; "
            "rate = { per_second = 20.0; burst = 1; };"))
        q = f"{uid}.crm"
        ids = [f"p-{i}" for i in range(30)]
        publish_many(broker, q, [(b"{}", {"message_id": i}) for i in ids])
        wait_for(lambda: api.snapshot()[1] is not None, 20, what="the 429")
        # /readyz shows the pause, and the route stays ready: it is no failure
        def paused():
            r = s.readyz()
            return r is not None and "paused" in r.text and r
        r = wait_for(paused, 2, interval=0.05, what="/readyz detail paused")
        assert r.status_code == 200
        assert json.loads(r.text)["routes"]["crm"]["ready"] is True
        done = lambda: {k for _, k, st in api.snapshot()[0] if st == 200} == set(ids)  # noqa
        wait_for(done, 30, what="every message accepted")
        log, refused_at = api.snapshot()
        refused = [k for t, k, st in log if st == 429]
        # Nothing arrived while the legacy side had asked to wait (but what was on the
        # wire already), and the refused call came first after the pause.
        during = [t - refused_at for t, _, _ in log if refused_at + 0.25 < t < refused_at + 1.9]
        assert during == [], f"requests {during} s into the 2 s pause"
        after = [(t, k) for t, k, st in log if t >= refused_at + 1.9]
        assert after and after[0][1] in refused, (after[:3], refused)
        assert after[0][0] - refused_at >= 1.9
        accepted = [k for _, k, st in log if st == 200]
        assert sorted(set(accepted)) == sorted(ids)
        assert broker.count(q + ".dlq") == 0 and broker.count(q + ".retry.1") == 0
        assert metric(s, "retries_total", "crm") == 0  # no attempt burnt, no retry queue
        assert metric(s, "throttled_seconds_total", "crm") >= 1.9
        text = s.log()
        assert re.search(r"asked to wait 2s .*pausing the route", text), text[-3000:]
        assert re.search(r"pause over after 2\.\ds: resuming at 20 calls/s with \d+ deliveries "
                         r"held", text), text[-3000:]
        s.stop()
        assert broker.count(q) == 0


SOAP_OK = ('<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/'
           'envelope/"><soap:Body><ok/></soap:Body></soap:Envelope>')


def test_soap_out_rate_and_503_pause(broker, sidecar, uid):
    """soap out at 5/s; a 503 with Retry-After pauses it, retried in place."""
    with legacy_server() as server:
        api = PausingApi(server, nth=8, status=503)
        handle = server.handler

        def soap(req):
            resp = handle(req)
            if resp.status == 200:
                return Response(200, SOAP_OK, {"Content-Type": "text/xml; charset=utf-8"})
            return resp
        server.handler = soap
        s = sidecar(name=uid, outbound=out_route(
            "svc", server.url("/ws"), 'action = "urn:Update"; retry = { delays = [60]; }; '
            "rate = { per_second = 5.0; burst = 1; };", kind="soap"))
        q = f"{uid}.svc"
        ids = [f"s-{i}" for i in range(20)]
        publish_many(broker, q, [(b"<Update/>", {"message_id": i, "content_type": "text/xml"})
                                 for i in ids])
        done = lambda: {k for _, k, st in api.snapshot()[0] if st == 200} == set(ids)  # noqa
        wait_for(done, 30, what="every message accepted")
        log, refused_at = api.snapshot()
        times = [t for t, _, _ in log]
        assert max_in_window(times) <= 5 + 1 + 1
        assert not [t for t in times if refused_at + 0.25 < t < refused_at + 1.9]
        assert broker.count(q + ".dlq") == 0
        assert metric(s, "retries_total", "svc") == 0
        s.stop()


def test_poll_rate_paces_the_pages_of_one_poll(broker, sidecar, uid, setup):  # noqa: F811
    """Each page moves the cursor, so the next is asked at once: at 4/s, not at once."""
    exchange, queue, state = setup
    with legacy_server() as server:
        gets = []

        def pages(req):
            gets.append(req.at)
            since = int(req.query.get("since") or 0)
            items = [] if since >= 30 else [{"id": f"t{n}", "n": n}
                                             for n in range(since + 1, since + 4)]
            return json_response(200, {"items": items})
        server.handler = pages
        route = (f'{{ name = "tickets"; kind = "poll"; url = "{server.url()}?since={{cursor}}"; '
                 f'interval = 30; exchange = "{exchange}"; routing_key = "ticket.changed"; '
                 f'items = ".items[]"; id = ".id"; cursor = ".n | tostring"; '
                 f'initial_cursor = "0"; rate = {{ per_second = 4.0; burst = 1; }}; }}')
        s = sidecar(name=uid, inbound=route, extra=f'state_dir = "{state}";')
        wait_for(lambda: broker.count(queue) == 30, 20, what="30 items")
        wait_for(lambda: len(gets) >= 11, 10, what="the empty last page")
        assert max_in_window(gets) <= 4 + 1 + 1, gets
        assert gets[10] - gets[0] >= 10 / 4.0 - 0.3  # 11 GETs at 4/s, counted by the server
        assert metric(s, "throttle_state", "tickets") in (0, 1)
        s.stop()
