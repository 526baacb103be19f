"""The inbound spool (spool = { dir; max_bytes; }) against a real broker: while the
broker is down, requests are answered 202 "spooled" once on disk and forwarded in
order, with their ids and properties, when it is back — across a SIGKILL of the
sidecar; a full spool and a full disk answer 503 (never a lost 202); a torn
journal tail is cut off with a log line; `check` refuses what cannot work."""
import concurrent.futures
import glob
import json
import os
import re
import subprocess

import pytest
import requests

from conftest import free_port, make_config, run_cli, wait_for


class SpoolRoute:
    """An http inbound route with a spool, its exchange and a bound queue."""

    def __init__(self, broker, sidecar, uid, spool_dir, max_bytes=None, extra_route="",
                 queue_arguments=None):
        self.broker, self.uid = broker, uid
        self.exchange, self.queue = f"{uid}.ex", f"{uid}.q"
        broker.declare_exchange(self.exchange)
        broker.declare_queue(self.queue, self.exchange, "#", arguments=queue_arguments)
        self.port, self.admin_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}/in"
        self.spool_dir = str(spool_dir)
        limit = f" max_bytes = {max_bytes};" if max_bytes else ""
        route = (f'{{ name = "in"; kind = "http"; listen = "127.0.0.1:{self.port}"; path = "/in"; '
                 f'exchange = "{self.exchange}"; routing_key = "k"; pass_headers = ["X-Tenant"]; '
                 f'spool = {{ dir = "{self.spool_dir}";{limit} }}; {extra_route} }}')
        self.text = make_config(broker, uid, inbound=route, admin_port=self.admin_port)
        self.start_sidecar = sidecar
        self.sidecar = None

    def start(self, ready=True):
        """ready: the broker is up; wait until the publisher is connected to it (a route
        with a spool is ready at once, spooling, so /readyz alone does not say so)."""
        self.sidecar = self.start_sidecar(self.text, ready=ready, name=self.uid)
        if ready:
            self.sidecar.wait_log(r'route=publisher msg="connected to', 30)
        else:
            wait_for(self.listening, 20, what="the route's listener")
        return self.sidecar

    def listening(self):
        try:
            requests.get(self.url, timeout=1)
            return True
        except requests.RequestException:
            return False

    def post(self, key, body=None, session=None, timeout=30):
        body = body if body is not None else json.dumps({"key": key}).encode()
        return (session or requests).post(self.url, data=body, timeout=timeout, headers={
            "Content-Type": "application/json", "Idempotency-Key": key, "X-Tenant": "acme",
            "X-Correlation-ID": f"corr-{key}"})

    def metric(self, name):
        text = requests.get(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5).text
        m = re.search(rf'^amqp_sidecar_{name}{{route="in"[^}}]*}} (\S+)$', text, re.M)
        return float(m[1]) if m else None

    def segments(self):
        return glob.glob(os.path.join(self.spool_dir, "*.seg"))


@pytest.fixture
def spool(tmp_path):
    """An empty directory for a route's journal."""
    d = tmp_path / "spool"
    d.mkdir()
    return d


def post_concurrently(route, keys_per_client, body=None):
    """Each client posts its keys in order; returns {key: response}."""
    def run(keys):
        s = requests.Session()
        return [(k, route.post(k, body, session=s)) for k in keys]
    out = {}
    with concurrent.futures.ThreadPoolExecutor(len(keys_per_client)) as pool:
        for part in pool.map(run, keys_per_client):
            out.update(dict(part))
    return out


def test_spooled_while_down_survive_a_sigkill_and_arrive_in_order(broker, sidecar, uid, spool):
    t = SpoolRoute(broker, sidecar, uid, spool)
    t.start()
    assert t.post("warm-up").json()["routed"] is True  # the broker is up: published at once
    broker.get_all(t.queue)
    broker.stop()
    try:
        # Ready all the same: a load balancer keeps sending, the spool takes it.
        ready = wait_for(lambda: (lambda r: r if "requests are spooled" in r.text else None)(
            t.sidecar.readyz()), 20, what="readyz saying the route spools")
        assert ready.status_code == 200, ready.text
        clients = [[f"c{c}-{i:04d}" for i in range(250)] for c in range(8)]
        answers = post_concurrently(t, clients)
        assert len(answers) == 2000
        bad = [(k, r.status_code, r.text) for k, r in answers.items()
               if r.status_code != 202 or r.json().get("spooled") is not True]
        assert bad == []
        assert answers["c0-0000"].json()["message_id"] == "c0-0000"
        wait_for(lambda: t.metric("spool_messages") == 2000, 10, what="2000 spooled")
        assert t.metric("spooled_total") == 2000
        assert t.metric("spool_oldest_seconds") > 0
        t.sidecar.kill()  # SIGKILL: nothing flushed, nothing said goodbye

        t.start(ready=False)  # the broker is still down
        t.sidecar.wait_log(r"2000 message\(s\) .* left by an earlier run", 20)
        assert t.metric("spool_messages") == 2000
    finally:
        broker.start()
    wait_for(lambda: broker.count(t.queue) >= 2000, 60, what="2000 forwarded")
    wait_for(lambda: t.metric("spool_messages") == 0, 20, what="the spool drained")
    got = broker.get_all(t.queue)
    ids = [p.message_id for p, _ in got]
    assert sorted(set(ids)) == sorted(k for c in clients for k in c)
    assert len(ids) == 2000  # no duplicates: nothing was in flight when it was killed
    for c in clients:  # each client's requests in the order it sent them
        mine = [i for i in ids if i.startswith(c[0].split("-")[0] + "-")]
        assert mine == c
    props, body = next((p, b) for p, b in got if p.message_id == "c3-0007")
    assert json.loads(body) == {"key": "c3-0007"}
    assert props.correlation_id == "corr-c3-0007"
    assert props.content_type == "application/json"
    assert props.app_id == f"amqp-sidecar/{uid}"
    assert props.delivery_mode == 2 and props.timestamp > 0
    assert props.headers["x-sidecar-route"] == "in" and props.headers["x-tenant"] == "acme"
    assert t.metric("spool_forwarded_total") == 2000
    wait_for(lambda: t.segments() == [], 10, what="drained segments deleted")
    r = t.post("after")
    assert r.status_code == 202 and r.json()["routed"] is True
    assert "spool: 0 message(s)" in t.sidecar.readyz().text


def fill_while_down(broker, t, pad, n=14):
    """With the broker stopped, posts n bodies of `pad` bytes until the spool refuses:
    (keys answered 202, responses answered 503); the broker is started again."""
    broker.stop()
    try:
        body = json.dumps({"pad": "x" * pad}).encode()
        answers = [(f"big-{i}", t.post(f"big-{i}", body)) for i in range(n)]
        spooled = [k for k, r in answers if r.status_code == 202]
        refused = [r for _, r in answers if r.status_code == 503]
        assert len(spooled) + len(refused) == n
        if refused and "spool is full" in refused[0].text:  # full: not ready any more
            assert t.sidecar.readyz().status_code == 503
        assert all(int(r.headers["Retry-After"]) > 0 for r in refused)
        assert t.metric("spool_refused_total") == len(refused)
    finally:
        broker.start()
    return spooled, refused


def assert_forwarded_exactly(broker, t, keys):
    wait_for(lambda: broker.count(t.queue) >= len(keys), 60, what="the spooled ones forwarded")
    wait_for(lambda: t.metric("spool_messages") == 0, 20, what="the spool drained")
    assert [p.message_id for p, _ in broker.get_all(t.queue)] == keys


def test_a_full_spool_answers_503_and_keeps_every_202(broker, sidecar, uid, spool):
    t = SpoolRoute(broker, sidecar, uid, spool, max_bytes=1048576,
                   extra_route="max_body = 200000;")
    t.start()
    spooled, refused = fill_while_down(broker, t, 100000)
    assert 5 <= len(spooled) <= 10
    assert "spool is full" in refused[0].json()["error"]
    assert_forwarded_exactly(broker, t, spooled)


@pytest.fixture
def small_disk(tmp_path):
    d = tmp_path / "tiny"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(d)], check=True)
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def test_a_full_disk_answers_503_and_keeps_every_202(broker, sidecar, uid, small_disk, tmp_path):
    t = SpoolRoute(broker, sidecar, uid, small_disk, extra_route="max_body = 200000;")
    conf = tmp_path / "check.conf"
    conf.write_text(t.text)
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    assert "less than spool.max_bytes" in r.stderr  # a note: the disk fills first
    t.start()
    spooled, refused = fill_while_down(broker, t, 30000)
    assert 3 <= len(spooled) <= 9 and refused
    assert "No space left on device" in refused[-1].json()["error"]
    assert "No space left on device" in t.sidecar.log()
    assert_forwarded_exactly(broker, t, spooled)
    t.sidecar.stop()  # before the tmpfs goes


def test_a_torn_journal_tail_is_cut_off_and_the_rest_forwarded(broker, sidecar, uid, spool):
    t = SpoolRoute(broker, sidecar, uid, spool)
    t.start()
    broker.stop()
    try:
        keys = [f"t-{i}" for i in range(5)]
        assert all(t.post(k).status_code == 202 for k in keys)
        t.sidecar.kill()
        [segment] = t.segments()
        with open(segment, "ab") as f:  # a record whose write the crash cut short
            f.write(b"SPR1\x40\x00\x00\x00" + b"\x06" + b"\x00" * 7 + b"torn")
        t.start(ready=False)
        t.sidecar.wait_log(r"discarded a torn record at the end of segment", 20)
        assert "5 message(s)" in t.sidecar.log()
    finally:
        broker.start()
    wait_for(lambda: broker.count(t.queue) >= 5, 60, what="the 5 forwarded")
    assert [p.message_id for p, _ in broker.get_all(t.queue)] == keys


def test_check_refuses_a_spool_on_rpc_and_a_missing_dir(broker, uid, tmp_path):
    def check(route_extra, spool_dir):
        route = (f'{{ name = "in"; kind = "http"; listen = "127.0.0.1:{free_port()}"; path = "/in"; '
                 f'exchange = "amq.topic"; routing_key = "k"; {route_extra} '
                 f'spool = {{ dir = "{spool_dir}"; }}; }}')
        conf = tmp_path / "c.conf"
        conf.write_text(make_config(broker, uid, inbound=route))
        return run_cli("check", "-c", str(conf))

    r = check('mode = "rpc";', tmp_path)
    assert r.returncode == 2 and "an rpc route cannot spool" in r.stderr
    r = check("", tmp_path / "missing")
    assert r.returncode == 2 and "does not exist" in r.stderr
    assert check("", tmp_path).returncode == 0


def test_a_blocked_broker_spools_and_forwards_when_unblocked(broker, sidecar, uid, spool):
    """The first request's confirm is held back by the resource alarm: after confirm_timeout
    it is spooled (the broker may still store it: then it arrives twice, with one id); the
    next ones go to the spool at once."""
    t = SpoolRoute(broker, sidecar, uid, spool)
    t.text = t.text.replace("connect_timeout = 2;", "connect_timeout = 2; confirm_timeout = 2;")
    t.start()
    broker.ctl("set_vm_memory_high_watermark", "0.000001")
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            held = pool.submit(t.post, "held")
            t.sidecar.wait_log("broker blocked publishing", timeout=20)
            later = [t.post(f"b-{i}") for i in range(3)]
            assert held.result().status_code == 202 and held.result().json()["spooled"] is True
        assert all(r.status_code == 202 and r.json()["spooled"] is True for r in later)
    finally:
        broker.ctl("set_vm_memory_high_watermark", "0.4")
    wait_for(lambda: t.metric("spool_messages") == 0, 40, what="the spool drained")
    ids = [p.message_id for p, _ in broker.get_all(t.queue)]
    assert [i for i in ids if i != "held"] == ["b-0", "b-1", "b-2"]
    assert 1 <= ids.count("held") <= 2


def test_nacked_forwards_are_sent_again_in_order(broker, sidecar, uid, spool):
    """A queue that refuses what is over its length (reject-publish) nacks forwards: the
    forwarder goes back to the oldest unconfirmed record and tries again, so as the queue
    is emptied every message arrives. (Not in order: a later forward in the same window may
    be accepted while an earlier one is refused, as room frees up.)"""
    t = SpoolRoute(broker, sidecar, uid, spool,
                   queue_arguments={"x-max-length": 40, "x-overflow": "reject-publish"})
    t.start()
    broker.stop()
    try:
        keys = [f"n-{i:03d}" for i in range(150)]
        assert all(t.post(k).json()["spooled"] is True for k in keys)
    finally:
        broker.start()
    got = []
    wait_for(lambda: got.extend(p.message_id for p, _ in broker.get_all(t.queue)) or
             len(set(got)) >= len(keys), 60, interval=0.5, what="every spooled message")
    assert sorted(set(got)) == keys
    assert "failed; sending again from it" in t.sidecar.log()
    wait_for(lambda: t.metric("spool_messages") == 0, 20, what="the spool drained")


def test_sigterm_while_forwarding_exits_cleanly_and_the_next_run_finishes(broker, sidecar, uid,
                                                                         spool):
    t = SpoolRoute(broker, sidecar, uid, spool)
    t.start()
    broker.stop()
    try:
        clients = [[f"s{c}-{i:03d}" for i in range(100)] for c in range(4)]
        assert all(r.json()["spooled"] for r in post_concurrently(t, clients).values())
    finally:
        broker.start()
    t.sidecar.wait_log("reconnected to", 30)
    assert t.sidecar.stop() == 0  # drains what is in flight; the rest stays in the journal
    assert "stopped (exit 0)" in t.sidecar.log()
    t.start()
    wait_for(lambda: t.metric("spool_messages") == 0, 40, what="the spool drained")
    ids = [p.message_id for p, _ in broker.get_all(t.queue)]
    assert set(ids) == {k for c in clients for k in c}
    first = list(dict.fromkeys(ids))
    for c in clients:
        assert [i for i in first if i.startswith(c[0][:3])] == c


def test_two_routes_on_one_spool_dir_are_refused_at_start(broker, sidecar, uid, spool):
    routes = ", ".join(
        f'{{ name = "{n}"; kind = "http"; listen = "127.0.0.1:{free_port()}"; path = "/{n}"; '
        f'exchange = "amq.topic"; routing_key = "k"; spool = {{ dir = "{spool}"; }}; }}'
        for n in ("a", "b"))
    s = sidecar(make_config(broker, uid, inbound=routes), ready=False, name=uid)
    assert s.proc.wait(30) == 1
    assert "in use by another route or sidecar process" in s.log()


def test_a_process_spool_serves_every_event_route_in_a_directory_of_its_own(broker, sidecar, uid,
                                                                            spool, tmp_path):
    """`spool` at the top: each http event route without its own spool gets DIR/<route>
    (made at start), a route with its own keeps it, an rpc route does not spool; `check`
    names a missing process directory, and systemd-dropin lists the directory."""
    exchange = f"{uid}.ex"
    broker.declare_exchange(exchange)
    queues = {k: f"{uid}.{k}" for k in ("a", "b", "own")}
    for key, q in queues.items():
        broker.declare_queue(q, exchange, key)
    own = tmp_path / "own-spool"
    own.mkdir()
    port, admin = free_port(), free_port()

    def route(name, extra=""):
        return (f'{{ name = "{name}"; kind = "http"; listen = "127.0.0.1:{port}"; '
                f'path = "/{name}"; exchange = "{exchange}"; routing_key = "{name}"; {extra} }}')
    inbound = ", ".join([route("a"), route("b"), route("own", f'spool = {{ dir = "{own}"; }};'),
                         route("ask", 'mode = "rpc"; timeout = 2;')])
    text = make_config(broker, uid, inbound=inbound, admin_port=admin,
                       extra=f'spool = {{ dir = "{spool}"; max_bytes = 8388608; }};')

    conf = tmp_path / "process-spool.conf"
    conf.write_text(text.replace(str(spool), str(tmp_path / "nowhere")))
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 2
    line = next(i for i, t in enumerate(conf.read_text().splitlines(), 1) if "nowhere" in t)
    assert f":{line}: the process's spool: spool.dir" in r.stderr and "does not exist" in r.stderr
    conf.write_text(text)
    r = run_cli("systemd-dropin", "-c", str(conf))
    assert r.returncode == 0 and str(spool) in r.stdout, r.stdout + r.stderr

    s = sidecar(text, name=uid)
    assert sorted(os.listdir(spool)) == ["a", "b"]  # own keeps its directory; rpc has none
    assert os.path.exists(own / "lock")
    broker.stop()
    try:
        def post(path, key):
            return requests.post(f"http://127.0.0.1:{port}/{path}", data=b'{"k": 1}', timeout=30,
                                 headers={"Content-Type": "application/json",
                                          "Idempotency-Key": key})
        wait_for(lambda: "requests are spooled" in s.readyz().text, 20,
                 what="readyz saying the routes spool")
        answers = {(path, i): post(path, f"{path}-{i}") for path in ("a", "b", "own")
                   for i in range(20)}
        assert all(r.status_code == 202 and r.json()["spooled"] is True
                   for r in answers.values()), [(k, r.text) for k, r in answers.items()]
        asked = post("ask", "ask-1")
        assert asked.status_code == 503  # a reply needs the broker: never spooled
        assert glob.glob(str(spool / "a" / "*.seg")) and glob.glob(str(own / "*.seg"))
    finally:
        broker.start()
    for key, q in queues.items():
        wait_for(lambda: broker.count(q) >= 20, 60, what=f"route {key}'s 20 forwarded")
        assert [p.message_id for p, _ in broker.get_all(q)] == [f"{key}-{i}" for i in range(20)]
