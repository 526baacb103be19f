"""End-to-end: SIGHUP reloads the config (adapter/reload.c) against a real RabbitMQ.

Under load (inbound POSTs in a loop, outbound deliveries flowing), a reload that
adds, removes and changes outbound routes loses no 202 and no delivery, and
leaves the untouched routes alone (same consumer on the broker, no errors). A bad
file or a change that needs a restart is refused with a log line saying why,
and traffic goes on as before.
"""
import json
import re
import signal
import threading
import time

import pika
import requests

from conftest import free_port, make_config, plain, wait_for
from http_poll_helpers import legacy_server

FAST = "retry = { delays = [0.2, 0.4]; }; circuit = { failures = 0; };"


def out_route(name, url, extra=""):
    return f'{{ name = "{name}"; kind = "http"; url = "{url}"; {FAST} {extra} }}'


def in_route(name, port, exchange, key):
    return (f'{{ name = "{name}"; kind = "http"; listen = "127.0.0.1:{port}"; '
            f'path = "/{name}"; exchange = "{exchange}"; routing_key = "{key}"; }}')


def write_config(path, text):
    with open(path, "w") as f:
        f.write(text)


def reload(sc, pattern, timeout=40):
    """SIGHUP, then wait for the log line that ends the reload."""
    start = len(sc.log())
    sc.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: re.search(pattern, plain(sc.log()[start:])), timeout,
             what=f"log /{pattern}/ after SIGHUP")
    return plain(sc.log()[start:])


def consumers(broker):
    """{queue: (consumer_tag, channel pid)} of every consumer on the broker: the tag is the
    route's name, the channel's pid tells one connection from its successor."""
    out = broker.ctl("list_consumers", "queue_name", "consumer_tag", "channel_pid",
                     "--formatter", "json")
    return {c["queue_name"]: (c["consumer_tag"], c["channel_pid"]) for c in json.loads(out)}


class InboundLoad:
    """POSTs to an inbound route in a loop; keeps every 202's message id."""

    def __init__(self, port, path):
        self.url = f"http://127.0.0.1:{port}{path}"
        self.accepted, self.other = [], []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        n = 0
        with requests.Session() as s:
            while not self.stopping.is_set():
                n += 1
                try:
                    r = s.post(self.url, data=json.dumps({"n": n}),
                               headers={"Content-Type": "application/json"}, timeout=10)
                except requests.RequestException as e:
                    self.other.append(repr(e))
                    continue
                if r.status_code == 202:
                    self.accepted.append(r.json()["message_id"])
                else:
                    self.other.append(r.status_code)

    def stop(self):
        self.stopping.set()
        self.thread.join(30)


class OutboundLoad:
    """Publishes to the given queues in turn (with confirms); keeps what went where."""

    def __init__(self, broker, queues):
        self.broker, self.queues = broker, list(queues)
        self.sent = {q: [] for q in self.queues}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def set_queues(self, queues):
        with self.lock:
            self.queues = list(queues)
            for q in queues:
                self.sent.setdefault(q, [])

    def _run(self):
        n = 0
        with self.broker.channel() as ch:
            ch.confirm_delivery()
            while not self.stopping.is_set():
                with self.lock:
                    queues = list(self.queues)
                for q in queues:
                    n += 1
                    mid = f"m-{n}"
                    ch.basic_publish("", q, json.dumps({"n": n}).encode(),
                                     pika.BasicProperties(delivery_mode=2, message_id=mid,
                                                          content_type="application/json"),
                                     mandatory=True)
                    self.sent[q].append(mid)
                time.sleep(0.01)

    def stop(self):
        self.stopping.set()
        self.thread.join(30)


def ids(messages):
    return {p.message_id for p, _ in messages}


def route_lines(log, route, level):
    return [line for line in log.splitlines()
            if f"route={route} " in line and f"level={level}" in line]


def test_reload_adds_removes_and_changes_outbound_routes_under_load(broker, sidecar, uid,
                                                                    tmp_path):
    ex, port = f"{uid}.ev", free_port()
    broker.declare_exchange(ex)
    broker.declare_queue(f"{uid}.in", ex, "in.#")
    with legacy_server() as api:
        inbound = in_route("orders", port, ex, "in.orders")
        before = [out_route("keep", api.url("/keep"), "concurrency = 2;"),
                  out_route("change", api.url("/a")),
                  out_route("gone", api.url("/gone"))]
        after = [out_route("keep", api.url("/keep"), "concurrency = 2;"),
                 out_route("change", api.url("/b"), "concurrency = 3;"),
                 out_route("new", api.url("/new"))]
        admin = free_port()
        first = make_config(broker, uid, inbound, ", ".join(before), admin)
        s = sidecar(first)
        keep_tag = consumers(broker)[f"{uid}.keep"]
        q = {n: f"{uid}.{n}" for n in ("keep", "change", "gone", "new")}

        posts = InboundLoad(port, "/orders")
        pubs = OutboundLoad(broker, [q["keep"], q["change"], q["gone"]])
        wait_for(lambda: len(posts.accepted) > 20 and len(api.snapshot()) > 30, 20,
                 what="load flowing")

        write_config(s.config_path, make_config(broker, uid, inbound, ", ".join(after), admin))
        log = reload(s, r"reload: applied: ")
        pubs.set_queues([q["keep"], q["change"], q["new"]])
        flowing = len(posts.accepted)
        wait_for(lambda: len(posts.accepted) > flowing + 20, 20, what="posts after the reload")
        wait_for(lambda: any(r.path == "/new" for r in api.snapshot()), 20,
                 what="the added route delivering")
        wait_for(lambda: any(r.path == "/b" for r in api.snapshot()), 20,
                 what="the changed route on its new url")
        posts.stop()
        pubs.stop()
        assert consumers(broker)[q["keep"]] == keep_tag  # the same consumer all along
        for n in ("keep", "change", "new"):
            wait_for(lambda: broker.count(q[n]) == 0, 20, what=f"{q[n]} to drain")
        time.sleep(0.5)  # the last acks
        assert s.stop() == 0

        # One line per route and the summary.
        assert re.search(r"route=gone .*reload: removed \(outbound http\)", log), log
        assert re.search(r"route=new .*reload: added \(outbound http\)", log), log
        assert re.search(r"route=change .*reload: changed: concurrency, url", log), log
        assert re.search(r"route=keep .*reload: unchanged", log), log
        assert re.search(r"route=orders .*reload: unchanged", log), log
        assert "reload: applied: 1 added, 1 removed, 1 changed, 2 unchanged" in log

        # No 202 lost: every accepted message is in its queue.
        assert posts.accepted and not posts.other, posts.other[:5]
        got = ids(broker.get_all(f"{uid}.in"))
        assert set(posts.accepted) <= got, len(set(posts.accepted) - got)

        # No delivery lost: each published message reached the legacy side, a DLQ, or
        # (the removed route's, published after it stopped) still waits in its queue.
        seen = {r.header("Idempotency-Key") for r in api.snapshot()}
        for n in ("keep", "change", "new", "gone"):
            left = ids(broker.get_all(q[n])) | ids(broker.get_all(q[n] + ".dlq"))
            missing = [m for m in pubs.sent[q[n]] if m not in seen and m not in left]
            assert not missing, (n, missing[:5])
        assert not broker.get_all(q["keep"] + ".dlq")

        # The untouched route was not disturbed: the same consumer all along, no error.
        full = plain(s.log())
        assert not route_lines(full, "keep", "error") and not route_lines(full, "keep", "warn")
        assert not route_lines(full, "orders", "error")
        assert "keep" not in re.findall(r"route=(\S+) .*stopped for the reload", full)
        assert len(re.findall(r"route=keep .*started \(outbound", full)) == 1


def test_reload_keeps_the_untouched_consumer(broker, sidecar, uid):
    """The broker's view: the untouched route keeps its consumer and channel, the changed
    one gets a new channel, the removed one is gone."""
    with legacy_server() as api:
        admin = free_port()
        first = make_config(broker, uid, "", ", ".join(
            [out_route("keep", api.url("/keep")), out_route("change", api.url("/a")),
             out_route("gone", api.url("/gone"))]), admin)
        s = sidecar(first)
        before = consumers(broker)
        write_config(s.config_path, make_config(broker, uid, "", ", ".join(
            [out_route("keep", api.url("/keep")), out_route("change", api.url("/b"))]), admin))
        reload(s, r"reload: applied: 0 added, 1 removed, 1 changed, 1 unchanged")
        wait_for(lambda: f"{uid}.change" in consumers(broker), 20, what="the changed consumer")
        after = consumers(broker)
        assert after[f"{uid}.keep"] == before[f"{uid}.keep"]
        assert after[f"{uid}.change"] != before[f"{uid}.change"]
        assert f"{uid}.gone" not in after
        broker.publish("", f"{uid}.change", b"{}", content_type="application/json")
        assert api.wait_requests(1)[0].path == "/b"
        s.wait_ready()
        m = requests.get(s.admin + "/metrics", timeout=5).text
        assert f'route="gone"' not in m and f'route="change"' in m
        status = requests.get(s.admin + "/status.json", timeout=5).json()
        assert [r["name"] for r in status["routes"]] == ["keep", "change"]
        assert {c["name"] for c in status["connections"]} == {"keep", "change"}
        assert s.stop() == 0


class Small:
    """One inbound route ("orders" into queue <uid>.in) and one outbound ("keep")."""

    def __init__(self, broker, sidecar, uid, api):
        self.ex, self.port, self.admin = f"{uid}.ev", free_port(), free_port()
        broker.declare_exchange(self.ex)
        broker.declare_queue(f"{uid}.in", self.ex, "in.#")
        self.inbound = in_route("orders", self.port, self.ex, "in.orders")
        self.good = make_config(broker, uid, self.inbound, out_route("keep", api.url("/keep")),
                                self.admin)
        self.sc = sidecar(self.good)
        self.tag = consumers(broker)[f"{uid}.keep"]

    def post(self):
        return requests.post(f"http://127.0.0.1:{self.port}/orders", data=b'{"n":1}',
                             headers={"Content-Type": "application/json"}, timeout=10)


def test_reload_refuses_a_bad_file_and_traffic_goes_on(broker, sidecar, uid):
    with legacy_server() as api:
        t = Small(broker, sidecar, uid, api)
        s, good, inbound, admin, tag = t.sc, t.good, t.inbound, t.admin, t.tag
        bad = good + 'outbound_extra = 1;\n'
        bad_line = len(bad.splitlines())
        # also a wrong value inside a route: both problems are named with their line
        bad = bad.replace('url = "http', 'concurrency = 0; url = "http', 1)
        route_line = next(i + 1 for i, line in enumerate(bad.splitlines()) if "concurrency = 0" in line)
        write_config(s.config_path, bad)
        log = reload(s, r"reload refused: 2 problems in ")
        assert f"reload refused: {s.config_path}:{bad_line}: " in log, log
        assert f"reload refused: {s.config_path}:{route_line}: " in log, log
        assert "the running config stays" in log
        assert "reload: changed" not in log and "reload: applied" not in log
        # traffic unaffected
        r = t.post()
        assert r.status_code == 202
        broker.publish("", f"{uid}.keep", b"{}", message_id="after-bad",
                       content_type="application/json")
        assert api.wait_requests(1)[0].header("Idempotency-Key") == "after-bad"
        assert consumers(broker)[f"{uid}.keep"] == tag
        # fixed, the next SIGHUP applies
        write_config(s.config_path, make_config(broker, uid, inbound, ", ".join(
            [out_route("keep", api.url("/keep")), out_route("new", api.url("/new"))]), admin))
        reload(s, r"reload: applied: 1 added, 0 removed, 0 changed, 2 unchanged")
        assert s.stop() == 0


def test_reload_refuses_changes_that_need_a_restart(broker, sidecar, uid):
    with legacy_server() as api:
        t = Small(broker, sidecar, uid, api)
        s, inbound, admin, tag, port, ex = t.sc, t.inbound, t.admin, t.tag, t.port, t.ex
        both = ", ".join([out_route("keep", api.url("/keep")), out_route("new", api.url("/new"))])

        # A process key: refused whole, so the added route does not start either.
        write_config(s.config_path, make_config(broker, uid, inbound, both, admin)
                     .replace("heartbeat = 5;", "heartbeat = 7;"))
        log = reload(s, r"reload refused: \d+ changes? above")
        assert "reload refused: broker.heartbeat changed; that needs a restart" in log, log
        assert re.search(r"route=new .*reload: added", log)
        assert not broker.exists(f"{uid}.new")

        # An inbound route's change: named, refused, and the route keeps its old key.
        write_config(s.config_path, make_config(
            broker, uid, in_route("orders", port, ex, "in.other"), both, admin))
        log = reload(s, r"reload refused: \d+ changes? above")
        assert re.search(r"route=orders .*reload: changed: routing_key", log), log
        assert re.search(r"route=orders .*reload refused: inbound route changed needs a restart",
                         log), log
        assert not broker.exists(f"{uid}.new")
        r = t.post()
        assert r.status_code == 202
        msgs = broker.get_all(f"{uid}.in")
        assert [p.message_id for p, _ in msgs] == [r.json()["message_id"]]
        assert consumers(broker)[f"{uid}.keep"] == tag
        assert s.stop() == 0


def test_reload_lets_a_removed_route_finish_its_call(broker, sidecar, uid):
    """A delivery in flight on a route the reload removes is finished, acked once, and
    neither redelivered nor dead-lettered; the reload waits for it."""
    with legacy_server() as api:
        api.delay = 4.0  # longer than the 2 s between "draining" lines
        admin = free_port()
        s = sidecar(make_config(broker, uid, "", ", ".join(
            [out_route("keep", api.url("/keep")), out_route("gone", api.url("/gone"))]), admin))
        broker.publish("", f"{uid}.gone", b"{}", message_id="slow",
                       content_type="application/json")
        api.wait_requests(1)
        write_config(s.config_path, make_config(
            broker, uid, "", out_route("keep", api.url("/keep")), admin))
        log = reload(s, r"reload: applied: 0 added, 1 removed, 0 changed, 1 unchanged")
        assert re.search(r"reload: draining: gone: deliveries in flight", log), log
        assert "drain_timeout" not in log
        assert broker.count(f"{uid}.gone") == 0 and broker.count(f"{uid}.gone.dlq") == 0
        time.sleep(0.5)
        assert [r.header("Idempotency-Key") for r in api.snapshot()] == ["slow"]
        assert s.stop() == 0
