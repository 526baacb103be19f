"""End-to-end: the poll inbound kind (legacy REST → AMQP by polling) against
a real RabbitMQ and a real HTTP server playing a ticket API with `?since=`.

Asserts on what the API was asked (query, If-None-Match), what reached the
bound queue (ids, bodies, counts — no duplicates), what was parked in the
route's DLQ, and what the cursor file holds.
"""
import json
import os
import re
import threading
import time

import pytest
import requests

from conftest import run_cli, wait_for
from http_poll_helpers import Response, json_response, legacy_server


class TicketApi:
    """GET /tickets?since=X → {"items": [tickets with updated_at > X, oldest first]}."""

    def __init__(self, server, etag=False):
        self.tickets = []
        self.lock = threading.Lock()
        self.fail = None  # a Response to answer instead, while set
        self.etag = etag
        server.handler = self.handle

    def add(self, tid, updated_at, **fields):
        with self.lock:
            self.tickets.append(dict(id=tid, updated_at=updated_at, **fields))

    def version(self):
        return '"v%d"' % len(self.tickets)

    def handle(self, req):
        with self.lock:
            if self.fail is not None:
                return self.fail
            since = req.query.get("since", "")
            items = sorted((t for t in self.tickets if t["updated_at"] > since),
                           key=lambda t: t["updated_at"])
            if self.etag:
                if req.header("If-None-Match") == self.version():
                    return Response(304, "", {"ETag": self.version()})
                return json_response(200, {"items": items}, {"ETag": self.version()})
            return json_response(200, {"items": items})


@pytest.fixture
def setup(broker, uid, tmp_path):
    """The admin's exchange and a queue bound to it; the state dir."""
    exchange = f"{uid}.events"
    queue = f"{uid}.tickets-in"
    broker.declare_exchange(exchange)
    broker.declare_queue(queue, exchange, "ticket.#")
    state = tmp_path / "state"
    return exchange, queue, state


def poll_route(url, exchange, extra="", route="tickets", key="ticket.changed"):
    return (f'{{ name = "{route}"; kind = "poll"; url = "{url}"; interval = 0.2; '
            f'exchange = "{exchange}"; routing_key = "{key}"; {extra} }}')


def ticket_route(api_url, exchange, extra=""):
    return poll_route(api_url + "?since={cursor}", exchange,
                      'items = ".items[]"; id = ".id"; cursor = ".updated_at"; ' + extra)


def start(sidecar, uid, state, inbound, ready=True):
    s = sidecar(name=uid, inbound=inbound, extra=f'state_dir = "{state}";', ready=ready)
    if not ready:  # /readyz may rightly say no (a failing legacy API): wait for the broker
        s.wait_log(r"route=publisher msg=\"connected to", timeout=20)
    return s


def cursor_of(state, route="tickets"):
    path = os.path.join(state, f"{route}.cursor")
    return open(path).read() if os.path.exists(path) else None


def ids(messages):
    return [p.message_id for p, _ in messages]


def test_poll_publishes_each_item_once(broker, sidecar, uid, setup):
    exchange, queue, state = setup
    with legacy_server() as server:
        api = TicketApi(server)
        api.add("T-1", "2024-01-01T00:00:01Z", status="open")
        api.add("T-2", "2024-01-01T00:00:02Z", status="closed")
        s = start(sidecar, uid, state, ticket_route(server.url("/tickets"), exchange))
        wait_for(lambda: broker.count(queue) == 2, 10, what="2 tickets published")
        assert server.snapshot()[0].query == {"since": ""}  # initial_cursor defaults to ""
        wait_for(lambda: cursor_of(state) == "2024-01-01T00:00:02Z", 5, what="cursor stored")
        # later polls ask from the cursor (URL-encoded) and publish nothing again
        wait_for(lambda: sum(r.query.get("since") == "2024-01-01T00:00:02Z"
                             for r in server.snapshot()) >= 3, 5, what="polls from the cursor")
        assert "since=2024-01-01T00%3A00%3A02Z" in server.snapshot()[-1].raw_path
        assert broker.count(queue) == 2
        api.add("T-3", "2024-01-01T00:00:03Z", status="open")
        wait_for(lambda: broker.count(queue) == 3, 5, what="the new ticket")
        time.sleep(0.6)
        got = broker.get_all(queue)
        assert ids(got) == ["T-1", "T-2", "T-3"]
        props, body = got[0]
        assert json.loads(body) == {"id": "T-1", "updated_at": "2024-01-01T00:00:01Z",
                                    "status": "open"}
        assert props.content_type == "application/json"
        assert props.delivery_mode == 2
        assert props.app_id == f"amqp-sidecar/{uid}"
        assert props.headers["x-sidecar-route"] == "tickets"
        assert cursor_of(state) == "2024-01-01T00:00:03Z"
        assert s.stop() == 0


def test_poll_cursor_survives_restart(broker, sidecar, uid, setup):
    exchange, queue, state = setup
    with legacy_server() as server:
        api = TicketApi(server)
        api.add("A", "001")
        api.add("B", "002")
        text_route = ticket_route(server.url("/tickets"), exchange)
        s1 = start(sidecar, uid, state, text_route)
        wait_for(lambda: broker.count(queue) == 2, 10, what="first two")
        wait_for(lambda: cursor_of(state) == "002", 5, what="cursor 002")
        assert s1.stop() == 0
        api.add("C", "003")
        before = len(server.snapshot())
        s2 = start(sidecar, uid, state, text_route)
        wait_for(lambda: broker.count(queue) == 3, 10, what="the third")
        first = server.snapshot()[before]
        assert first.query == {"since": "002"}  # resumed from the stored cursor
        time.sleep(0.5)
        assert ids(broker.get_all(queue)) == ["A", "B", "C"]
        assert cursor_of(state) == "003"
        assert 'from cursor \\"002\\"' in s2.log()  # logfmt escapes the quotes
        s2.stop()


def test_poll_etag_not_modified_publishes_nothing_again(broker, sidecar, uid, setup):
    exchange, queue, state = setup
    with legacy_server() as server:
        api = TicketApi(server, etag=True)
        api.add("E-1", "1")
        api.add("E-2", "2")
        # no cursor: the whole list each time; the ETag makes repeats cheap
        s = start(sidecar, uid, state, poll_route(server.url("/tickets"), exchange,
                                                  'items = ".items[]"; id = ".id";'))
        wait_for(lambda: broker.count(queue) == 2, 10, what="two tickets")
        wait_for(lambda: sum(r.header("If-None-Match") == '"v2"' for r in server.snapshot()) >= 3,
                 5, what="conditional GETs answered 304")
        assert broker.count(queue) == 2
        api.add("E-3", "3")  # new version: the full list comes back with E-3 in it
        wait_for(lambda: broker.count(queue) == 3, 5, what="only the new ticket")
        time.sleep(0.6)
        assert ids(broker.get_all(queue)) == ["E-1", "E-2", "E-3"]
        assert cursor_of(state) is None  # no cursor configured, none written
        s.stop()


def poll_metrics(s):
    """(amqp_sidecar_poll_failing, whether poll_failures_total counted) of route tickets."""
    text = requests.get(s.admin + "/metrics", timeout=5).text
    labels = '{route="tickets",kind="poll",direction="inbound"}'
    failing = re.search(r"^amqp_sidecar_poll_failing" + re.escape(labels) + r" (\d+)$", text, re.M)
    failures = re.search(r"^amqp_sidecar_poll_failures_total" + re.escape(labels) + r" (\d+)$",
                         text, re.M)
    return int(failing[1]), int(failures[1]) > 0


@pytest.mark.parametrize("failure,expect", [
    (Response(500, "database is down"), "HTTP 500 from GET http://127.0.0.1:"),
    (Response(200, "<html>oops</html>", {"Content-Type": "text/html"}),
     "is not JSON: Invalid numeric literal at EOF at line 1, column 17; it begins: <html>oops"),
    (json_response(200, {"items": 5}), "items expression .items[] failed: Cannot iterate"),
])
def test_poll_legacy_errors_are_retried_and_logged(broker, sidecar, uid, setup, failure, expect):
    exchange, queue, state = setup
    with legacy_server() as server:
        api = TicketApi(server)
        api.add("F-1", "1")
        api.fail = failure
        s = start(sidecar, uid, state, ticket_route(server.url("/tickets"), exchange), ready=False)
        s.wait_log(r"route=tickets msg=\"poll failed \(next try in [0-9.]+s\): .*" +
                   re.escape(expect))
        r = s.readyz()
        assert r.status_code == 503
        assert r.json()["routes"]["tickets"]["detail"].startswith("last poll failed: ")
        assert poll_metrics(s) == (1, True)  # poll_failing, poll_failures_total > 0
        n_failed = len(server.snapshot())
        wait_for(lambda: len(server.snapshot()) >= n_failed + 2, 5, what="retries")
        assert broker.count(queue) == 0
        assert cursor_of(state) is None
        api.fail = None
        wait_for(lambda: broker.count(queue) == 1, 10, what="published after recovery")
        s.wait_log("poll works again")
        wait_for(lambda: s.readyz().status_code == 200, 5, what="/readyz 200")
        assert poll_metrics(s)[0] == 0
        time.sleep(0.5)
        assert ids(broker.get_all(queue)) == ["F-1"]
        assert cursor_of(state) == "1"
        s.stop()


@pytest.mark.parametrize("value", ["inf", "1e999", "nan"])
def test_poll_retry_after_not_a_number_backs_off(broker, sidecar, uid, setup, value):
    """Retry-After: inf (or 1e999, nan) is not delay-seconds: the normal backoff applies.
    It once became an undefined cast to a negative timer and a hot loop of GETs."""
    exchange, queue, state = setup
    with legacy_server() as server:
        api = TicketApi(server)
        api.add("N-1", "1")
        api.fail = Response(503, "maintenance", {"Retry-After": value})
        s = start(sidecar, uid, state, ticket_route(server.url("/tickets"), exchange), ready=False)
        s.wait_log(r"poll failed \(next try in \S+\): HTTP 503")
        first = len(server.snapshot())
        time.sleep(5)
        polls = len(server.snapshot()) - first
        # the backoff from 0.2 s, doubling with jitter, fits about 6 GETs in 5 s
        assert 1 <= polls <= 15, polls
        api.fail = None
        wait_for(lambda: broker.count(queue) == 1, 20, what="published after recovery")
        assert ids(broker.get_all(queue)) == ["N-1"]
        s.stop()


def test_poll_honours_retry_after(broker, sidecar, uid, setup):
    exchange, queue, state = setup
    with legacy_server() as server:
        api = TicketApi(server)
        api.add("W-1", "1")
        api.fail = Response(503, "maintenance", {"Retry-After": " 2 "})
        s = start(sidecar, uid, state, ticket_route(server.url("/tickets"), exchange), ready=False)
        server.wait_requests(1)
        api.fail = None  # the next GET succeeds, but must come after the 2 s asked for
        wait_for(lambda: broker.count(queue) == 1, 15, what="published after the pause")
        reqs = server.snapshot()
        assert reqs[1].at - reqs[0].at >= 1.9, [r.at - reqs[0].at for r in reqs]
        assert "next try in 2.0s" in s.log()
        s.stop()


def test_poll_broker_down_keeps_cursor(broker, sidecar, uid, setup):
    exchange, queue, state = setup
    with legacy_server() as server:
        api = TicketApi(server)
        api.add("B-1", "1")
        s = start(sidecar, uid, state, ticket_route(server.url("/tickets"), exchange))
        wait_for(lambda: cursor_of(state) == "1", 10, what="cursor 1")
        broker.stop()
        try:
            api.add("B-2", "2")
            s.wait_log("waiting for the broker before polling", timeout=15)
            time.sleep(1.0)
            assert cursor_of(state) == "1"  # nothing stored, nothing advanced
            assert s.readyz().status_code == 503
        finally:
            broker.start()
        wait_for(lambda: cursor_of(state) == "2", 30, what="cursor 2 after the broker returned")
        wait_for(lambda: broker.count(queue) == 2, 10, what="both tickets")
        assert ids(broker.get_all(queue)) == ["B-1", "B-2"]
        s.stop()


def test_poll_unconfirmed_publish_keeps_cursor(broker, sidecar, uid, setup):
    """The publish is accepted but never confirmed (the exchange vanished, so the
    broker closes the channel): the cursor must stay, and the item come later."""
    exchange, queue, state = setup
    with legacy_server() as server:
        api = TicketApi(server)
        api.add("U-1", "1")
        s = start(sidecar, uid, state, ticket_route(server.url("/tickets"), exchange))
        wait_for(lambda: cursor_of(state) == "1", 10, what="cursor 1")
        with broker.channel() as ch:
            ch.exchange_delete(exchange)
        api.add("U-2", "2")
        s.wait_log(r"poll failed \(next try in [0-9.]+s\): publishing item 1 \(id U-2\) failed: "
                   r"broker connection lost before the confirm: .*NOT_FOUND", timeout=10)
        time.sleep(0.5)
        assert cursor_of(state) == "1"
        broker.declare_exchange(exchange)
        broker.declare_queue(queue, exchange, "ticket.#")
        wait_for(lambda: cursor_of(state) == "2", 30, what="cursor 2 once the exchange is back")
        time.sleep(0.3)
        # A retry that lands between the exchange's declare and its binding is unroutable:
        # parked in the route's DLQ, cursor moved. Published either way, never lost.
        dlq = f"{uid}.tickets.dlq"
        parked = ids(broker.get_all(dlq)) if broker.exists(dlq) else []
        assert ids(broker.get_all(queue)) + parked == ["U-1", "U-2"]
        s.stop()


def test_poll_bad_and_unroutable_items_are_parked(broker, sidecar, uid, setup):
    exchange, queue, state = setup
    dlq = f"{uid}.tickets.dlq"
    with legacy_server() as server:
        api = TicketApi(server)
        api.add("P-1", "1", kind="open")
        with api.lock:
            api.tickets.append({"updated_at": "2", "kind": "open"})  # no id
        api.add("P-3", "3", kind="weird")  # no binding for ticket.weird
        api.add("P-4", "4", kind="open")
        route = ticket_route(server.url("/tickets"), exchange).replace(
            'routing_key = "ticket.changed"', 'routing_key = "ticket.{json.kind}"')
        broker.declare_queue(queue, exchange, "ticket.open")
        with broker.channel() as ch:
            ch.queue_unbind(queue, exchange, "ticket.#")
        s = start(sidecar, uid, state, route)
        wait_for(lambda: cursor_of(state) == "4", 10, what="cursor past every item")
        assert ids(broker.get_all(queue)) == ["P-1", "P-4"]
        parked = broker.get_all(dlq)
        assert len(parked) == 2
        errors = {json.loads(b).get("id"): p.headers["x-sidecar-error"] for p, b in parked}
        assert errors[None] == "id expression .id gave null or nothing for item 2"
        assert errors["P-3"].startswith("unroutable:")
        no_id = [p for p, b in parked if "id" not in json.loads(b)][0]
        assert no_id.message_id.startswith("sha256:")
        s.stop()


def test_poll_response_cursor_pages_through(broker, sidecar, uid, setup, tmp_path):
    exchange, queue, state = setup
    pages = {"": ([1, 2], "p2"), "p2": ([3], "p3"), "p3": ([], "p3")}
    jq = tmp_path / "ticket.jq"
    jq.write_text("{ticket: .n, source: \"legacy\"}\n")

    def handler(req):
        items, nxt = pages[req.query.get("page", "")]
        return json_response(200, {"data": [{"n": n} for n in items], "next": nxt})

    with legacy_server() as server:
        server.handler = handler
        route = poll_route(server.url("/feed") + "?page={cursor}", exchange,
                           'items = ".data[]"; id = ".n"; cursor = ".next"; '
                           f'cursor_from = "response"; transform = "{jq}";')
        s = start(sidecar, uid, state, route)
        wait_for(lambda: broker.count(queue) == 3, 10, what="three items over two pages")
        wait_for(lambda: cursor_of(state) == "p3", 5, what="cursor p3")
        time.sleep(0.5)
        got = broker.get_all(queue)
        assert ids(got) == ["1", "2", "3"]  # numbers as ids
        assert [json.loads(b) for _, b in got] == [
            {"ticket": n, "source": "legacy"} for n in (1, 2, 3)]
        s.stop()


def test_poll_check_reports_config_problems(broker, uid, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    conf = tmp_path / "bad.conf"
    conf.write_text(f'''name = "{uid}";
broker = {{ url = "{broker.url}"; }};
state_dir = "{blocker}/sub";
inbound = (
  {{ name = "a"; kind = "poll"; url = "http://h/x"; id = ".id"; cursor = ".t";
     exchange = "e"; }},
  {{ name = "b"; kind = "poll"; url = "http://h/x?since={{cursor}}"; id = ".id |||";
     exchange = "e"; }},
  {{ name = "c"; kind = "poll"; url = "http://h/x"; exchange = "e"; }}
);
''')
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 2
    err = r.stderr
    assert 'inbound route "a": cursor is set but url has no {cursor}' in err
    assert 'inbound route "b": url uses {cursor} but no cursor expression is set' in err
    assert 'inbound route "b": id does not compile as jq' in err
    assert 'inbound route "c": missing required key "id"' in err
    assert f'state_dir "{blocker}/sub" is not a directory' in err
