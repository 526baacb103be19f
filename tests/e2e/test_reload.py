"""End-to-end: SIGHUP reloads the config (adapter/reload.c) against a real RabbitMQ.

Under load (inbound POSTs in a loop, outbound deliveries flowing), a reload that
adds, removes and changes outbound routes loses no 202 and no delivery, and
leaves the untouched routes alone (same consumer on the broker, no errors); one
that adds, removes and changes inbound routes (http on a shared and on a new
listener, file, poll) loses no 202, publishes no file record twice and keeps the
poll's cursor (adapter/sidecar_inbound.c). A bad file or a change that needs a
restart is refused with a log line saying why, and traffic goes on as before; an
upload to a removed route holds the reload at most drain_timeout.
"""
import json
import re
import signal
import socket
import threading
import time

import pika
import requests

from conftest import free_port, make_config, plain, wait_for
from fault_proxy import FaultProxy
from file_helpers import Route, expected_id, listing
from http_poll_helpers import json_response, legacy_server
from soap_helpers import envelope

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
        # The added route declares its queue once connected, just after: a mandatory
        # publish before that comes back unroutable (and stops the load thread).
        wait_for(lambda: broker.exists(q["new"]), 20, what="the added route's queue")
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

        # An inbound change that needs a restart (a route on the admin listener's address):
        # named, refused whole, and the running inbound route keeps its old key.
        on_admin = (f'{{ name = "admin_side"; kind = "http"; listen = "127.0.0.1:{admin}"; '
                    f'path = "/side"; exchange = "{ex}"; routing_key = "in.side"; }}')
        write_config(s.config_path, make_config(
            broker, uid, in_route("orders", port, ex, "in.other") + ", " + on_admin, both,
            admin))
        log = reload(s, r"reload refused: \d+ changes? above")
        assert re.search(r"route=orders .*reload: changed: routing_key", log), log
        assert re.search(r"route=admin_side .*reload refused: 127.0.0.1:\d+ is the admin "
                         r"listener's address", log), log
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


# ---- inbound routes (adapter/sidecar_inbound.c) -------------------------------------------

def http_route(name, port, exchange, key, path=None):
    return (f'{{ name = "{name}"; kind = "http"; listen = "127.0.0.1:{port}"; '
            f'path = "{path or "/" + name}"; exchange = "{exchange}"; routing_key = "{key}"; }}')


def poll_route(name, url, exchange, key, extra=""):
    return (f'{{ name = "{name}"; kind = "poll"; url = "{url}"; interval = 0.2; '
            f'items = ".items[]"; id = ".id"; exchange = "{exchange}"; routing_key = "{key}"; '
            f'{extra} }}')


class Tickets:
    """The legacy API the poll routes ask: /pchange?since=C answers the tickets after C,
    /pnew one ticket, /pgone nothing."""

    def __init__(self, server):
        self.lock = threading.Lock()
        self.tickets = [("T-1", "2024-01-01T00:00:01Z"), ("T-2", "2024-01-01T00:00:02Z")]
        server.handler = self.answer

    def add(self, tid, at):
        with self.lock:
            self.tickets.append((tid, at))

    def answer(self, req):
        if req.path.startswith("/pchange"):
            since = req.query.get("since", "")
            with self.lock:
                items = [{"id": t, "updated_at": at} for t, at in self.tickets if at > since]
            return json_response(200, {"items": items})
        if req.path.startswith("/pnew"):
            return json_response(200, {"items": [{"id": "N-1"}]})
        return json_response(200, {"items": []})


RECORDS = 3000  # a file's records: at a few thousand a second, files wait while one is published


def lines(n, tag):
    return "".join(json.dumps({"file": tag, "i": i}) + "\n" for i in range(n)).encode()


def test_reload_applies_inbound_changes_under_load(broker, sidecar, uid, tmp_path):
    """Under load, one reload adds an http route on the shared listener and one on a new
    port, removes one, changes one's routing key, removes a file route and adds another,
    changes a poll route and removes another: every 202 is in the queue of the old or the
    new routing, exactly once; the untouched route's clients see no error; the removed
    path answers 404; file records are published exactly once; the poll keeps its cursor."""
    ex, fx = f"{uid}.ev", f"{uid}.files"
    broker.declare_exchange(ex)
    broker.declare_exchange(fx)
    q = {k: f"{uid}.q.{k}" for k in ("keep", "cold", "cnew", "gone", "added", "newport",
                                      "pold", "pnew", "padded")}
    for k, key in (("keep", "in.keep"), ("cold", "in.change.old"), ("cnew", "in.change.new"),
                   ("gone", "in.gone"), ("added", "in.added"), ("newport", "in.newport"),
                   ("pold", "poll.old"), ("pnew", "poll.new"), ("padded", "poll.added")):
        broker.declare_queue(q[k], ex, key)
    fgone = Route(str(tmp_path), uid, "fgone", "jsonl")
    fnew = Route(str(tmp_path), uid, "fnew", "jsonl")
    for r in (fgone, fnew):
        broker.declare_queue(r.queue, fx, r.bind)
    p1, p2, admin = free_port(), free_port(), free_port()
    state = tmp_path / "state"
    state.mkdir()
    extra = f'state_dir = "{state}";'
    with legacy_server() as api:
        tickets = Tickets(api)
        pchange = lambda key: poll_route("pchange", api.url("/pchange?since={cursor}"), ex, key,
                                         'cursor = ".updated_at";')
        before = [http_route("keep", p1, ex, "in.keep"),
                  http_route("change", p1, ex, "in.change.old"),
                  http_route("gone", p1, ex, "in.gone"),
                  fgone.config(), pchange("poll.old"),
                  poll_route("pgone", api.url("/pgone"), ex, "poll.gone")]
        after = [http_route("keep", p1, ex, "in.keep"),
                 http_route("change", p1, ex, "in.change.new"),
                 http_route("added", p1, ex, "in.added"),
                 http_route("newport", p2, ex, "in.newport"),
                 fnew.config(), pchange("poll.new"),
                 poll_route("pnew", api.url("/pnew"), ex, "poll.added")]
        s = sidecar(make_config(broker, uid, ", ".join(before), "", admin, extra))
        wait_for(lambda: broker.count(q["pold"]) == 2, 15, what="the first two tickets")

        keep = [InboundLoad(p1, "/keep") for _ in range(3)]
        change = [InboundLoad(p1, "/change") for _ in range(2)]
        gone = InboundLoad(p1, "/gone")
        files = {f"f{i:02}.jsonl": lines(RECORDS, f"f{i}") for i in range(12)}
        for name, content in files.items():
            fgone.drop(name, content)
        wait_for(lambda: all(len(c.accepted) > 20 for c in keep + change + [gone]), 20,
                 what="load flowing")
        wait_for(lambda: listing(fgone.done), 20, what="a first file done")

        write_config(s.config_path, make_config(broker, uid, ", ".join(after), "", admin, extra))
        log = reload(s, r"reload: applied: ")
        flowing = {id(c): len(c.accepted) for c in keep + change}
        wait_for(lambda: all(len(c.accepted) > flowing[id(c)] + 20 for c in keep + change), 20,
                 what="posts after the reload")
        gone_after = requests.post(f"http://127.0.0.1:{p1}/gone", data=b"{}",
                                   headers={"Content-Type": "application/json"}, timeout=10)
        added = requests.post(f"http://127.0.0.1:{p1}/added", data=b'{"a":1}',
                              headers={"Content-Type": "application/json"}, timeout=10)
        newport = requests.post(f"http://127.0.0.1:{p2}/newport", data=b'{"b":1}',
                                headers={"Content-Type": "application/json"}, timeout=10)
        new_files = {f"n{i}.jsonl": lines(50, f"n{i}") for i in range(3)}
        for name, content in new_files.items():
            fnew.drop(name, content)
        tickets.add("T-3", "2024-01-01T00:00:03Z")
        for name in new_files:
            fnew.wait_done(name)
        wait_for(lambda: broker.count(q["pnew"]) >= 1, 15, what="the changed poll's new ticket")
        wait_for(lambda: broker.count(q["padded"]) >= 1, 15, what="the added poll")
        for c in keep + change + [gone]:
            c.stop()
        pgone_seen = sum(r.path.startswith("/pgone") for r in api.snapshot())
        time.sleep(1.0)
        assert sum(r.path.startswith("/pgone") for r in api.snapshot()) == pgone_seen
        since = [r.query.get("since") for r in api.snapshot() if r.path.startswith("/pchange")]
        assert s.stop() == 0

    assert "reload: applied: 4 added, 3 removed, 2 changed, 1 unchanged" in log, log
    assert "cannot start" not in log and "drain_timeout" not in log, log
    assert re.search(r"route=change .*reload: changed: routing_key", log), log
    assert re.search(r"route=pchange .*reload: changed: routing_key", log), log
    # The added routes serve, the removed path is gone.
    assert gone_after.status_code == 404
    assert added.status_code == 202 and newport.status_code == 202
    assert ids(broker.get_all(q["added"])) == {added.json()["message_id"]}
    assert ids(broker.get_all(q["newport"])) == {newport.json()["message_id"]}

    # No 202 lost, none twice, each in the queue of its route's old or new routing.
    def taken(*names):
        got = [p.message_id for k in names for p, _ in broker.get_all(q[k])]
        assert len(got) == len(set(got)), "a message twice"
        return set(got)
    keep_ids = [m for c in keep for m in c.accepted]
    assert set(keep_ids) <= taken("keep")
    cold, cnew = taken("cold"), taken("cnew")
    change_ids = {m for c in change for m in c.accepted}
    assert change_ids <= cold | cnew and cold and cnew, (len(change_ids - cold - cnew))
    assert set(gone.accepted) <= taken("gone")
    # The untouched route's clients, and the changed one's, saw no error at all.
    assert not [o for c in keep for o in c.other], [o for c in keep for o in c.other][:5]
    assert not [o for c in change for o in c.other], [o for c in change for o in c.other][:5]
    assert set(gone.other) <= {404}, gone.other[:5]

    # Files: each of the removed route's files was published whole and once and filed, or
    # not begun (still in the drop directory, or claimed in .processing for a next start).
    got = [p.message_id for p, _ in broker.get_all(fgone.queue)]
    assert len(got) == len(set(got))
    for name, content in files.items():
        mine = {expected_id(content, i) for i in range(RECORDS)}
        if name in listing(fgone.done):
            assert mine <= set(got), name
        else:
            assert name in listing(fgone.dir) + listing(fgone.processing), name
            assert not mine & set(got), name
    assert len(got) == RECORDS * len(listing(fgone.done))
    assert len(listing(fgone.done)) < len(files)  # the reload came while files were waiting
    got = [p.message_id for p, _ in broker.get_all(fnew.queue)]
    assert len(got) == len(set(got)) == 150
    # The poll kept its cursor: the changed route asked from T-2 on, never from the start.
    assert ids(broker.get_all(q["pnew"])) == {"T-3"}
    assert ids(broker.get_all(q["pold"])) == {"T-1", "T-2"}
    assert "" not in since[since.index("2024-01-01T00:00:02Z"):]


def test_reload_refuses_a_bad_inbound_change_and_the_old_one_serves(broker, sidecar, uid):
    ex, port, admin = f"{uid}.ev", free_port(), free_port()
    broker.declare_exchange(ex)
    broker.declare_queue(f"{uid}.in", ex, "in.#")
    s = sidecar(make_config(broker, uid, http_route("orders", port, ex, "in.orders"), "", admin))
    url = f"http://127.0.0.1:{port}/orders"
    # A placeholder http routes do not know: the file is refused with its line.
    bad = make_config(broker, uid, http_route("orders", port, ex, "in.{nope.x}"), "", admin)
    write_config(s.config_path, bad)
    line = next(i + 1 for i, text in enumerate(bad.splitlines()) if "nope" in text)
    log = reload(s, r"reload refused: \d+ problems? in ")
    assert f"reload refused: {s.config_path}:{line}: " in log, log
    # An exchange that does not exist: refused whole before anything changes.
    write_config(s.config_path, make_config(
        broker, uid, http_route("orders", port, f"{uid}.missing", "in.orders"), "", admin))
    log = reload(s, r"reload refused: the new inbound routes' queues and bindings cannot be "
                    r"declared")
    assert "reload: applied" not in log
    r = requests.post(url, data=b"{}", headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 202
    assert ids(broker.get_all(f"{uid}.in")) == {r.json()["message_id"]}
    assert s.stop() == 0


def test_reload_bounds_a_removed_route_upload_by_drain_timeout(broker, sidecar, uid):
    """An upload to a removed route that still trickles in holds the reload at most
    drain_timeout; completed afterwards it gets 503 (never accepted), and the route that
    stays answers all along."""
    ex, port, admin = f"{uid}.ev", free_port(), free_port()
    broker.declare_exchange(ex)
    broker.declare_queue(f"{uid}.in", ex, "in.#")
    keep = http_route("keep", port, ex, "in.keep")
    lone_port = free_port()
    lone = http_route("lone", lone_port, ex, "in.lone")  # its listener's only route
    s = sidecar(make_config(broker, uid, ", ".join([keep, http_route("slow", port, ex, "in.slow"),
                                                    lone]), "", admin, "drain_timeout = 3;"))
    assert requests.post(f"http://127.0.0.1:{lone_port}/lone", data=b"{}", timeout=10,
                         headers={"Content-Type": "application/json"}).status_code == 202
    body = b'{"x":"' + b"a" * 200 + b'"}'
    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    c.sendall(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10])
    sent = 10
    for _ in range(3):  # the sidecar has read its headers, and it progresses
        time.sleep(0.2)
        c.sendall(body[sent:sent + 1])
        sent += 1
    write_config(s.config_path, make_config(broker, uid, keep, "", admin, "drain_timeout = 3;"))
    start = len(s.log())
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGHUP)
    while not re.search(r"reload: applied: ", plain(s.log()[start:])):
        assert time.monotonic() - t0 < 8, "the reload waited past drain_timeout"
        if sent < len(body) - 1:
            c.sendall(body[sent:sent + 1])  # progress, so it counts as in flight
            sent += 1
        time.sleep(0.3)
    elapsed = time.monotonic() - t0
    log = plain(s.log()[start:])
    assert "reload: drain_timeout (3s) passed" in log and "slow" in log, log
    assert elapsed >= 2.5, elapsed
    r = requests.post(f"http://127.0.0.1:{port}/keep", data=b"{}",
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 202
    c.sendall(body[sent:])
    answer = c.recv(4096)
    assert answer.startswith(b"HTTP/1.1 503"), answer
    c.close()
    assert requests.post(f"http://127.0.0.1:{port}/slow", data=b"{}", timeout=10,
                         headers={"Content-Type": "application/json"}).status_code == 404
    assert len(broker.get_all(f"{uid}.in")) == 2  # lone's, and keep's after the reload
    # The listener whose last route went closed once it had nothing in flight.
    s.wait_log(r"reload: 127\.0\.0\.1:\d+ closed", timeout=10)
    try:
        socket.create_connection(("127.0.0.1", lone_port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    assert refused, "the lone route's listener still accepts"
    assert s.stop() == 0


def soap_route(name, port, exchange, key):
    return (f'{{ name = "{name}"; kind = "soap"; listen = "127.0.0.1:{port}"; '
            f'path = "/{name}"; exchange = "{exchange}"; routing_key = "{key}"; }}')


def test_reload_changes_and_adds_soap_routes_on_a_shared_listener(broker, sidecar, uid):
    """soap routes take the same path as http ones: a changed one answers with its new
    routing from the reload on, an added one serves on the listener it shares, and the
    http route beside them is not disturbed."""
    ex, port, admin = f"{uid}.ev", free_port(), free_port()
    broker.declare_exchange(ex)
    for k in ("old", "new", "added", "keep"):
        broker.declare_queue(f"{uid}.{k}", ex, f"soap.{k}" if k != "keep" else "in.keep")
    keep = http_route("keep", port, ex, "in.keep")
    s = sidecar(make_config(broker, uid, keep + ", " + soap_route("ws", port, ex, "soap.old"),
                            "", admin))
    body = envelope("1.1", '<c:Ping xmlns:c="urn:example:crm"><c:n>1</c:n></c:Ping>')
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:example:Ping"'}

    def soap(path):
        return requests.post(f"http://127.0.0.1:{port}{path}", data=body.encode(),
                             headers=headers, timeout=10)
    posts = InboundLoad(port, "/keep")
    wait_for(lambda: len(posts.accepted) > 10, 20, what="load flowing")
    before = soap("/ws")
    assert before.status_code == 202, before.text
    write_config(s.config_path, make_config(
        broker, uid, ", ".join([keep, soap_route("ws", port, ex, "soap.new"),
                                soap_route("added", port, ex, "soap.added")]), "", admin))
    log = reload(s, r"reload: applied: 1 added, 0 removed, 1 changed, 1 unchanged")
    after, added = soap("/ws"), soap("/added")
    flowing = len(posts.accepted)
    wait_for(lambda: len(posts.accepted) > flowing + 10, 20, what="posts after the reload")
    posts.stop()
    assert s.stop() == 0
    assert re.search(r"route=ws .*reload: changed: routing_key", log), log
    assert after.status_code == 202 and added.status_code == 202, (after.text, added.text)
    assert broker.count(f"{uid}.old") == 1 and broker.count(f"{uid}.new") == 1
    assert broker.count(f"{uid}.added") == 1
    assert posts.accepted and not posts.other, posts.other[:5]
    assert set(posts.accepted) <= ids(broker.get_all(f"{uid}.keep"))


def test_reload_lets_a_removed_route_finish_an_upload(broker, sidecar, uid):
    """An upload to a removed route that completes within drain_timeout is accepted with the
    removed route's settings (its routing key), and the reload waits for its answer."""
    ex, port, admin = f"{uid}.ev", free_port(), free_port()
    broker.declare_exchange(ex)
    broker.declare_queue(f"{uid}.slow", ex, "in.slow")
    keep = http_route("keep", port, ex, "in.keep")
    s = sidecar(make_config(broker, uid, keep + ", " + http_route("slow", port, ex, "in.slow"),
                            "", admin))
    body = b'{"x":"' + b"a" * 20 + b'"}'
    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    c.sendall(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:5])
    time.sleep(0.3)
    write_config(s.config_path, make_config(broker, uid, keep, "", admin))
    start = len(s.log())
    s.proc.send_signal(signal.SIGHUP)
    for i in range(5, len(body)):  # about 3 s, a byte at a time
        time.sleep(0.15)
        assert not re.search(r"reload: applied", plain(s.log()[start:])), "did not wait"
        c.sendall(body[i:i + 1])
    answer = c.recv(4096)
    c.close()
    assert answer.startswith(b"HTTP/1.1 202"), answer
    s.wait_log(r"reload: applied: 0 added, 1 removed, 0 changed, 1 unchanged", timeout=10)
    log = plain(s.log()[start:])
    assert "reload: draining: slow: requests or publishes in flight" in log, log
    assert "drain_timeout" not in log
    got = broker.get_all(f"{uid}.slow")
    assert [b for _, b in got] == [body]
    assert s.stop() == 0


def test_reload_reconnects_with_the_new_inbound_topology(broker, sidecar, uid):
    """After a reload, the publisher's next connection declares the new routes' queues (a
    dead-letter queue deleted meanwhile comes back) and not the removed ones', and the
    removed route's name is never read after it went (ASan)."""
    ex, port, admin = f"{uid}.ev", free_port(), free_port()
    broker.declare_exchange(ex)
    broker.declare_queue(f"{uid}.in", ex, "in.#")
    s = sidecar(make_config(broker, uid, http_route("old", port, ex, "in.old"), "", admin))
    write_config(s.config_path, make_config(broker, uid, http_route("new", port, ex, "in.new"),
                                            "", admin))
    reload(s, r"reload: applied: 1 added, 1 removed, 0 changed, 0 unchanged")
    assert broker.exists(f"{uid}.new.dlq")  # declared by the reload itself
    with broker.channel() as ch:
        ch.queue_delete(f"{uid}.new.dlq")
        ch.queue_delete(f"{uid}.old.dlq")
    start = len(s.log())
    broker.ctl("close_all_connections", "test: reconnect")
    wait_for(lambda: re.search(r"route=publisher .*reconnected to", plain(s.log()[start:])), 30,
             what="the publisher reconnected")
    assert broker.exists(f"{uid}.new.dlq")
    assert not broker.exists(f"{uid}.old.dlq")
    s.wait_ready()
    r = requests.post(f"http://127.0.0.1:{port}/new", data=b"{}", timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 202
    assert requests.post(f"http://127.0.0.1:{port}/old", data=b"{}", timeout=10,
                         headers={"Content-Type": "application/json"}).status_code == 404
    assert s.stop() == 0


def test_reload_stops_a_file_route_once_its_publishes_are_answered(broker, sidecar, uid,
                                                                  tmp_path):
    """A removed file route whose confirms come late (a slow network to the broker) is
    still publishing when drain_timeout passes: the reload goes on, and the route stops
    only once its last publish was answered, the file published whole and once."""
    proxy = FaultProxy(broker.port)
    fx, ex, port, admin = f"{uid}.files", f"{uid}.ev", free_port(), free_port()
    broker.declare_exchange(fx)
    broker.declare_exchange(ex)
    slow = Route(str(tmp_path), uid, "slowfile", "jsonl", extra="settle_ms = 100;")
    broker.declare_queue(slow.queue, fx, slow.bind)
    keep = http_route("keep", port, ex, "in.keep")

    def config(inbound):
        return make_config(broker, uid, inbound, "", admin, "drain_timeout = 1;").replace(
            f"127.0.0.1:{broker.port}/", f"127.0.0.1:{proxy.port}/")
    try:
        s = sidecar(config(keep + ", " + slow.config()))
        proxy.latency(2.0)
        content = lines(100, "late")
        slow.drop("late.jsonl", content)
        wait_for(lambda: "late.jsonl" in listing(slow.processing), 10, what="the file claimed")
        write_config(s.config_path, config(keep))
        log = reload(s, r"reload: applied: 0 added, 1 removed, 0 changed, 1 unchanged")
        assert re.search(r"route=slowfile .*still publishing after drain_timeout", log), log
        assert not re.search(r"route=slowfile .*stopped", log), log
        s.wait_log(r"route=slowfile .*stopped \(its last publish was answered\)", timeout=30)
        proxy.heal()
        assert listing(slow.done) == ["late.jsonl"]
        got = [p.message_id for p, _ in broker.get_all(slow.queue)]
        assert sorted(got) == sorted(expected_id(content, i) for i in range(100))
        assert s.stop() == 0
    finally:
        proxy.close()


def test_reload_hands_a_spool_to_the_changed_route_and_refuses_to_drop_one(broker, sidecar, uid,
                                                                          tmp_path):
    """A changed http route whose spool keeps its directory takes the running route's spool
    over: what was spooled before the reload is forwarded as it was stored (its old routing
    key), what comes after with the new settings. Removing a route with a spool is refused
    (nothing would forward its journal)."""
    ex, port, admin = f"{uid}.ev", free_port(), free_port()
    broker.declare_exchange(ex)
    for key in ("a", "b"):
        broker.declare_queue(f"{uid}.{key}", ex, f"in.{key}")
    spool = tmp_path / "spool"
    spool.mkdir()
    extra = f'spool = {{ dir = "{spool}"; }};'

    def text(key, routes=None):
        routes = routes if routes is not None else http_route("orders", port, ex, f"in.{key}")
        return make_config(broker, uid, routes, "", admin, extra=extra).replace(
            "connect_timeout = 2;", "connect_timeout = 2; confirm_timeout = 2;")
    s = sidecar(text("a"))
    s.wait_log(r'route=publisher msg="connected to', 30)
    url = f"http://127.0.0.1:{port}/orders"

    def post(key):
        r = requests.post(url, data=b"{}", timeout=30, headers={
            "Content-Type": "application/json", "Idempotency-Key": key})
        assert r.status_code == 202, r.text
        return r.json()

    broker.ctl("set_vm_memory_high_watermark", "0.000001")
    try:
        post("before-0")  # meets the alarm: spooled after confirm_timeout (or published)
        before = [post(f"before-{i}") for i in range(1, 6)]
        assert all(a["spooled"] is True for a in before)
        write_config(s.config_path, text("b"))
        log = reload(s, r"reload: applied")
        assert "spool" in log and "taken over from the running route" in log, log
        after = [post(f"after-{i}") for i in range(5)]
        assert all(a["spooled"] is True for a in after)
        # Removing it would orphan the journal: refused, and the route serves on.
        write_config(s.config_path, text("b", http_route("other", port, ex, "in.b")))
        log = reload(s, r"reload refused: \d+ changes? above")
        assert "a route with a spool is removed" in log, log
        assert post("after-5")["spooled"] is True
    finally:
        broker.ctl("set_vm_memory_high_watermark", "0.4")
    wait_for(lambda: broker.count(f"{uid}.a") >= 5 and broker.count(f"{uid}.b") >= 6, 60,
             what="the spooled messages forwarded")
    a = [p.message_id for p, _ in broker.get_all(f"{uid}.a")]
    assert [i for i in a if i != "before-0"] == [f"before-{i}" for i in range(1, 6)]
    assert [p.message_id for p, _ in broker.get_all(f"{uid}.b")] == [
        f"after-{i}" for i in range(6)]
    assert s.stop() == 0
