"""End-to-end: two sidecars for one system under continuous load, SIGKILLed in turn (#16).

One config, two processes (each its own admin port, http listen port and state_dir, as on two
hosts), four routes, all under load at once:
  orders   http inbound    both serve; client threads act as the load balancer: each sends to
                           its first choice and, on a connection error or a 503, sends the same
                           request (same Idempotency-Key) to the other
  billing  http outbound   competing consumers (concurrency = prefetch = BILLING_CONCURRENCY)
  ledger   http outbound   ordered = true: one active consumer (x-single-active-consumer)
  items    poll inbound    lease = true: exactly one sidecar polls
The outbound queues are fed by pika with confirms; one legacy stub records every delivery.

KILLS times, ROUND_S apart, alternately the lease holder (which is also the ledger's active consumer: it
started first) and the standby is SIGKILLed and restarted on its ports and state dir.

Asserts, besides /readyz, /status.json and amqp_sidecar_lease_held naming the holder:
- orders: every request answered 202 has its message (message_id = the key) in the bound
  queue; a message is there twice only for a key the sender sent again (no answer, or 503).
- billing: every published message reached the stub; a message reached it twice only across
  a kill (its first call before the kill, its second after), at most BILLING_CONCURRENCY per
  kill (the unacked deliveries of the killed one); nothing dead-lettered; the queue ends empty.
- ledger: the order guarantee of an ordered route across a fail-over. With prefetch 1 the
  broker sends message n+1 only once n's ack has reached it, and a requeued message goes back
  to the head; so in the sequence of calls the stub saw, each one is the previous one again or
  the next one — a repeat only of the message in flight when the active consumer died, at most
  one per kill of the holder, none at a kill of the standby. The other sidecar takes over
  within FAILOVER_S (its delivered_total grows), and the standby never delivers while the
  active one lives.
- items: every item of the feed published, no gap (ha_helpers.assert_every_item); the lease
  moves within LEASE_BOUND_S of the kill.
"""
import json
import threading
import time

import pika
import requests

from conftest import free_port, wait_for
from ha_helpers import TAKEOVER_S, GrowingApi, assert_every_item, ha_config, poll_route, role
from http_poll_helpers import legacy_server
from test_ops import Metrics

KILLS = 6                # alternately the holder and the standby: 3 of each
ROUND_S = 4.0            # of load at least, from one kill to the next
BILLING_CONCURRENCY = 4  # billing's prefetch: at most this many unacked when its sidecar dies
LEASE_BOUND_S = 3.0      # README: 1 s retry after the broker saw the socket close; + slack
FAILOVER_S = 3.0         # ledger: kill of the active consumer → the other's first delivery
PUBLISH_PAUSE_S = 0.02   # each outbound publisher and the poll feed: about 50 a second
LB_THREADS = 3
LB_PAUSE_S = 0.03        # between two requests of one load-balancer thread
LB_GIVE_UP_S = 20        # a request no sidecar answered 202 for this long: a failure
DUPLICATE_SLACK_S = 1.0  # a call the killed one sent may be read by the stub this much later


class Slot:
    """One of the two hosts: its ports and state dir stay, the process on it changes."""

    def __init__(self, label, tmp_path):
        self.label = label
        self.http_port = free_port()
        self.admin_port = free_port()
        self.state = tmp_path / f"state-{label}"
        self.sc = None
        self.starts = 0


class Background(threading.Thread):
    """A load thread: step() until stopped; an exception ends it and is kept for the test."""

    def __init__(self, stop):
        super().__init__(daemon=True)
        self.stop_event = stop
        self.error = None

    def run(self):
        try:
            self.loop()
        except Exception as e:  # noqa: BLE001 — reported by the test, not lost with the thread
            self.error = e

    def loop(self):
        while not self.stop_event.is_set():
            self.step()


class Publisher(Background):
    """Publishes {"n": 1, 2, …} (message_id "<prefix>-<n>") into queue, each confirmed."""

    def __init__(self, broker, queue, prefix, stop):
        super().__init__(stop)
        self.broker, self.queue, self.prefix = broker, queue, prefix
        self.published = 0

    def loop(self):
        with self.broker.channel() as ch:
            ch.confirm_delivery()
            self.ch = ch
            super().loop()

    def step(self):
        n = self.published + 1
        self.ch.basic_publish("", self.queue, json.dumps({"n": n}).encode(),
                              pika.BasicProperties(delivery_mode=2, message_id=f"{self.prefix}-{n:06d}",
                                                   content_type="application/json"),
                              mandatory=True)
        self.published = n
        time.sleep(PUBLISH_PAUSE_S)


def post(slot, key):
    """One attempt: the status, or "refused" (nothing listens) or "unanswered" (sent, no answer)."""
    try:
        r = requests.post(f"http://127.0.0.1:{slot.http_port}/orders", data=json.dumps({"key": key}),
                          headers={"Content-Type": "application/json", "Idempotency-Key": key},
                          timeout=10)
    except requests.ConnectionError as e:
        return "refused" if "Connection refused" in str(e) else "unanswered"
    except requests.Timeout:
        return "unanswered"
    if r.status_code == 202:
        assert r.json()["message_id"] == key
    return r.status_code


class Client(Background):
    """A load-balancer thread: first choice slots[first], the other on a connection error or
    a 503, the same key each time, until one answers 202."""

    def __init__(self, lb, first, stop):
        super().__init__(stop)
        self.lb, self.first, self.n = lb, first, 0

    def step(self):
        key = f"h{self.first}-{self.n:06d}"
        self.n += 1
        self.lb.send(key, self.first % 2)
        time.sleep(LB_PAUSE_S)


class LoadBalancer:
    def __init__(self, slots, stop):
        self.slots = slots
        self.lock = threading.Lock()
        self.accepted = {}        # key → label of the sidecar that answered 202
        self.resent = set()       # keys sent again: unanswered or 503 on the first try
        self.counts = {"refused": 0, "unanswered": 0, "503": 0}
        self.failed = []          # (key, what): another status, or no 202 in LB_GIVE_UP_S
        self.slowest = 0.0        # first attempt to 202, seconds
        self.clients = [Client(self, i, stop) for i in range(LB_THREADS)]

    def send(self, key, first):
        t0, k = time.monotonic(), first
        while time.monotonic() - t0 < LB_GIVE_UP_S:
            slot = self.slots[k]
            k = 1 - k
            outcome = post(slot, key)
            with self.lock:
                if outcome == 202:
                    self.accepted[key] = slot.label
                    self.slowest = max(self.slowest, time.monotonic() - t0)
                    return
                if outcome in ("refused", "unanswered", 503):
                    self.counts[str(outcome)] += 1
                    if outcome != "refused":
                        self.resent.add(key)  # it may be in the queue already
                else:
                    self.failed.append((key, outcome))
                    return
            if k == first:
                time.sleep(0.05)  # both refused once: a moment before the next round
        with self.lock:
            self.failed.append((key, "no 202"))


class System:
    """The four routes, the stubs behind them, and the two slots that run them."""

    def __init__(self, broker, sidecar, config, uid, tmp_path, legacy, feed):
        self.broker, self.sidecar, self.config, self.uid = broker, sidecar, config, uid
        self.items_queue, self.poll = poll_route(broker, uid, feed)  # declares {uid}.events
        self.sink = f"{uid}.orders-in"
        broker.declare_queue(self.sink, f"{uid}.events", "order.#")
        self.outbound = (
            f'{{ name = "billing"; kind = "http"; url = "{legacy.url("/billing")}"; '
            f'concurrency = {BILLING_CONCURRENCY}; }}, '
            f'{{ name = "ledger"; kind = "http"; url = "{legacy.url("/ledger")}"; ordered = true; }}')
        self.slots = [Slot("a", tmp_path), Slot("b", tmp_path)]
        self.kills = []  # (monotonic before SIGKILL, after the process was reaped)

    def start(self, slot):
        orders = (f'{{ name = "orders"; kind = "http"; listen = "127.0.0.1:{slot.http_port}"; '
                  f'path = "/orders"; exchange = "{self.uid}.events"; routing_key = "order.new"; }}')
        text = ha_config(self.config, self.uid, f"{orders}, {self.poll}", slot.state,
                         outbound=self.outbound, admin_port=slot.admin_port)
        slot.sc = self.sidecar(text, name=f"{self.uid}-{slot.label}{slot.starts}")
        slot.starts += 1

    def by_role(self):
        """(holder, standby), as their /readyz say."""
        roles = {role(s.sc, "items"): s for s in self.slots}
        assert sorted(roles, key=str) == ["holder", "standby"], roles
        return roles["holder"], roles["standby"]


def delivered(sc, route):
    return Metrics(sc).get("amqp_sidecar_delivered_total", route=route, kind="http",
                           direction="outbound")


def lease_held(sc):
    m = Metrics(sc)
    assert m.families["amqp_sidecar_lease_held"].type == "gauge"
    # only leased routes have the series: not the http one, not the outbound ones
    assert [k for k in m.samples if k[0] == "amqp_sidecar_lease_held"] == [
        ("amqp_sidecar_lease_held", (("direction", "inbound"), ("kind", "poll"), ("route", "items")))]
    return m.get("amqp_sidecar_lease_held", route="items", kind="poll", direction="inbound")


def check_roles(system):
    """Each sidecar says which role it has, in /readyz, /status.json and /metrics; the standby
    (started after the holder) has never been the ledger's active consumer."""
    holder, standby = system.by_role()
    for slot, want, held in ((holder, "holder", 1), (standby, "standby", 0)):
        assert lease_held(slot.sc) == held, slot.label
        status = requests.get(slot.sc.admin + "/status.json", timeout=5).json()
        route = next(r for r in status["routes"] if r["name"] == "items")
        assert route["lease"]["role"] == want and route["lease"]["queue"] == f"{system.uid}.items.lease"
        ready = slot.sc.readyz().json()["routes"]
        assert "lease" not in ready["orders"] and "lease" not in ready["ledger"]
    detail = standby.sc.readyz().json()["routes"]["items"]
    assert detail["ready"] is True and "standby: another sidecar holds the lease" in detail["detail"]
    assert delivered(standby.sc, "ledger") == 0  # one active consumer: the holder
    return holder, standby


def flow_marks(system, lb, legacy):
    calls = legacy.snapshot()
    return (len(lb.accepted), sum(r.path == "/billing" for r in calls),
            sum(r.path == "/ledger" for r in calls), system.broker.count(system.items_queue))


def wait_flow(system, lb, legacy, since, what):
    """ROUND_S went by, every load moved on since `since` (flow_marks), and the standby
    consumes billing too."""
    time.sleep(ROUND_S)
    need = (30, 30, 20, 20)

    def moved():
        now = flow_marks(system, lb, legacy)
        return all(n - s >= k for n, s, k in zip(now, since, need)) and now

    marks = wait_for(moved, 30, 0.2, what=f"{what}: every route flowing")
    _, standby = system.by_role()
    wait_for(lambda: delivered(standby.sc, "billing") > 0, 20, 0.2,
             what=f"{what}: the standby consumes billing too")
    return marks


def kill(system, victim_role, n):
    """SIGKILLs the holder or the standby and restarts it; returns the seconds from the kill
    to the survivor holding the lease and delivering the ledger (holder kills only)."""
    holder, standby = check_roles(system)
    victim, survivor = (holder, standby) if victim_role == "holder" else (standby, holder)
    ledger_before = delivered(survivor.sc, "ledger")
    t0 = time.monotonic()
    victim.sc.kill()
    system.kills.append((t0, time.monotonic()))
    took = {}
    if victim is holder:
        def taken_over():
            if "lease" not in took and role(survivor.sc, "items") == "holder":
                took["lease"] = time.monotonic() - t0
            if "ledger" not in took and delivered(survivor.sc, "ledger") > ledger_before:
                took["ledger"] = time.monotonic() - t0
            return len(took) == 2
        wait_for(taken_over, TAKEOVER_S, 0.02, what=f"kill {n}: the survivor takes over {took}")
    else:
        assert role(survivor.sc, "items") == "holder"
    system.start(victim)
    wait_for(lambda: role(victim.sc, "items") == "standby", TAKEOVER_S,
             what=f"kill {n}: the restarted one waits")
    return took


def arrivals(legacy, path):
    """{message_id: [arrival times]} of the stub's calls on path, and the calls in order."""
    calls = [r for r in legacy.snapshot() if r.path == path]
    by_id = {}
    for r in calls:
        by_id.setdefault(r.header("Idempotency-Key"), []).append(r.at)
    return by_id, calls


def assert_billing(legacy, published, kills):
    """Every message at least once; again only across a kill, at most the prefetch per kill.
    Returns the number of repeated calls."""
    by_id, _ = arrivals(legacy, "/billing")
    want = {f"b-{n:06d}" for n in range(1, published + 1)}
    assert set(by_id) == want, f"missing {sorted(want - set(by_id))[:5]}, extra {sorted(set(by_id) - want)[:5]}"
    per_kill = [0] * len(kills)
    for mid, times in by_id.items():
        for first, again in zip(times, times[1:]):
            across = [i for i, (t0, t1) in enumerate(kills)
                      if first <= t1 + DUPLICATE_SLACK_S and again >= t0]
            assert across, f"{mid} delivered twice with no kill between ({first:.3f}, {again:.3f})"
            per_kill[across[-1]] += 1
    assert max(per_kill) <= BILLING_CONCURRENCY, per_kill
    return sum(per_kill)


def assert_ledger(legacy, published, holder_kills):
    """Each call is the previous message again (the one in flight at a kill of the active
    consumer) or the next one; all of 1..published. Returns the number of repeats."""
    seq = [r.json()["n"] for r in arrivals(legacy, "/ledger")[1]]
    assert seq[0] == 1 and seq[-1] == published and set(seq) == set(range(1, published + 1))
    repeats = 0
    for i, (prev, n) in enumerate(zip(seq, seq[1:])):
        assert n in (prev, prev + 1), f"call {i + 1}: {n} after {prev}: {seq[max(0, i - 5):i + 5]}"
        repeats += n == prev
    assert repeats <= holder_kills, f"{repeats} repeats for {holder_kills} kills of the active one"
    return repeats


def assert_orders(broker, sink, lb):
    """Every 202 has its message in the queue; twice only for a key sent again. Returns counts."""
    assert not lb.failed, lb.failed[:10]
    ids = [props.message_id for props, _ in broker.get_all(sink)]
    missing = set(lb.accepted) - set(ids)
    assert not missing, f"{len(missing)} request(s) answered 202 and not in {sink}: {sorted(missing)[:5]}"
    assert set(ids) <= set(lb.accepted), "a message no sender sent"
    seen, twice = set(), set()
    for mid in ids:
        (twice if mid in seen else seen).add(mid)
    assert twice <= lb.resent, f"duplicates of keys sent once: {sorted(twice - lb.resent)[:5]}"
    return len(ids), len(ids) - len(seen)


def test_ha_two_sidecars_under_load_lose_one_in_turn(broker, sidecar, config, uid, tmp_path):
    stop = threading.Event()
    with legacy_server(nodelay=True) as legacy, legacy_server(nodelay=True) as feed_server:
        feed = GrowingApi(feed_server, period=PUBLISH_PAUSE_S)
        system = System(broker, sidecar, config, uid, tmp_path, legacy, feed_server)
        a, b = system.slots
        system.start(a)
        wait_for(lambda: role(a.sc, "items") == "holder", TAKEOVER_S, what="a holds the lease")
        system.start(b)
        wait_for(lambda: role(b.sc, "items") == "standby", TAKEOVER_S, what="b is standby")
        lb = LoadBalancer(system.slots, stop)
        publishers = [Publisher(broker, f"{uid}.billing", "b", stop),
                      Publisher(broker, f"{uid}.ledger", "l", stop)]
        loads = lb.clients + publishers
        for t in loads:
            t.start()
        took = []
        try:
            marks = wait_flow(system, lb, legacy, (0, 0, 0, 0), "before the kills")
            for n in range(KILLS):
                took.append(kill(system, "holder" if n % 2 == 0 else "standby", n))
                marks = wait_flow(system, lb, legacy, marks, f"after kill {n}")
            check_roles(system)
        finally:
            stop.set()
            for t in loads:
                t.join(30)
            produced = feed.stop()
        assert [t.error for t in loads] == [None] * len(loads)
        billing, ledger = (p.published for p in publishers)
        wait_for(lambda: len(arrivals(legacy, "/billing")[0]) >= billing, 30, 0.2,
                 what="every billing message delivered")
        wait_for(lambda: len(set(r.json()["n"] for r in arrivals(legacy, "/ledger")[1])) >= ledger,
                 30, 0.2, what="every ledger message delivered")
        poll_repeats = assert_every_item(broker, uid, system.items_queue, produced)
        for slot in system.slots:
            assert slot.sc.stop() == 0
        for q in (f"{uid}.billing", f"{uid}.ledger"):
            assert broker.count(q) == 0, q
            assert broker.count(q + ".dlq") == 0, q + ".dlq"
        billing_repeats = assert_billing(legacy, billing, system.kills)
        holder_kills = sum(1 for t in took if t)
        ledger_repeats = assert_ledger(legacy, ledger, holder_kills)
        orders, orders_twice = assert_orders(broker, system.sink, lb)
        lease_s = [t["lease"] for t in took if t]
        ledger_s = [t["ledger"] for t in took if t]
        print(f"\nHA load: {KILLS} kills ({holder_kills} of the holder); "
              f"lease takeover {['%.2f' % s for s in lease_s]} s; "
              f"ordered fail-over {['%.2f' % s for s in ledger_s]} s; "
              f"orders: {len(lb.accepted)} answered 202, {orders} in the queue "
              f"({orders_twice} twice), {lb.counts} retried on the other, "
              f"slowest 202 {lb.slowest:.2f} s; billing {billing} published, "
              f"{billing_repeats} called again; ledger {ledger} published, "
              f"{ledger_repeats} repeated; poll {produced} items, {poll_repeats} repeated")
        assert all(s < LEASE_BOUND_S for s in lease_s), lease_s
        assert all(s < FAILOVER_S for s in ledger_s), ledger_s
