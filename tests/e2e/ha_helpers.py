"""Helpers for the high-availability end-to-end tests (test_ha.py, test_ha_load.py): two
sidecars on one config, a leased poll route over a feed that keeps growing, and the check
that every item of that feed was published.
"""
import threading
import time

from conftest import wait_for
from http_poll_helpers import json_response, peek_all

TAKEOVER_S = 10  # README: the retry (1s) after the broker saw the holder go; generous here


class GrowingApi:
    """GET /items?since=N → {"items": [items with seq > N, oldest first, at most 50]}, while a
    thread adds one item every `period` seconds until stopped."""

    def __init__(self, server, period=0.004):
        self.items = []
        self.lock = threading.Lock()
        self.running = True
        self.period = period
        server.handler = self.handle
        self.thread = threading.Thread(target=self.produce, daemon=True)
        self.thread.start()

    def produce(self):
        while self.running:
            with self.lock:
                n = len(self.items) + 1
                self.items.append({"id": f"I-{n:06d}", "seq": f"{n:06d}", "payload": "x" * 50})
            time.sleep(self.period)

    def stop(self):
        self.running = False
        self.thread.join()
        return len(self.items)

    def handle(self, req):
        since = req.query.get("since", "")
        with self.lock:
            items = [i for i in self.items if i["seq"] > since][:50]
        return json_response(200, {"items": items})


def role(s, route):
    """What /readyz says of route's lease: "holder", "standby", "waiting"; None if no answer."""
    r = s.readyz()
    if r is None:
        return None
    return r.json()["routes"][route].get("lease")


def ha_config(config, uid, inbound, state, outbound="", admin_port=None):
    # A short heartbeat: a holder that vanishes without closing its socket is noticed sooner.
    text = config(uid, inbound=inbound, outbound=outbound, admin_port=admin_port,
                  extra=f'state_dir = "{state}";')
    return text.replace("heartbeat = 5;", "heartbeat = 2;")


def poll_route(broker, uid, server):
    """The admin's exchange, a bound queue, and a leased poll route over GrowingApi."""
    exchange, queue = f"{uid}.events", f"{uid}.items-in"
    broker.declare_exchange(exchange)
    broker.declare_queue(queue, exchange, "item.#")
    inbound = (f'{{ name = "items"; kind = "poll"; url = "{server.url("/items")}?since={{cursor}}"; '
               f'interval = 0.05; items = ".items[]"; id = ".id"; cursor = ".seq"; '
               f'exchange = "{exchange}"; routing_key = "item.new"; lease = true; }}')
    return queue, inbound


def assert_every_item(broker, uid, queue, produced):
    """Every item produced was published (no gap), duplicates only as the same item under the
    same message_id, far fewer than a restart from scratch would give; the newest cursor is the
    only message of the cursor queue. Returns the number of duplicates."""
    last = f"{produced:06d}"
    wait_for(lambda: any(b.decode() == last for _, b in peek_all(broker, f"{uid}.items.cursor")),
             30, what="the last cursor stored in the broker")
    got = broker.get_all(queue)
    by_id = {}
    for props, body in got:
        assert by_id.setdefault(props.message_id, body) == body  # a duplicate is the same item
    want = {f"I-{i:06d}" for i in range(1, produced + 1)}
    missing = want - set(by_id)
    assert not missing, f"{len(missing)} item(s) never published, e.g. {sorted(missing)[:5]}"
    assert set(by_id) == want
    # a takeover repeats only what followed the last stored cursor, not the whole feed
    assert len(got) - len(by_id) < produced / 2, f"{len(got) - len(by_id)} duplicates"
    assert len(peek_all(broker, f"{uid}.items.cursor")) == 1  # x-max-length 1, drop-head
    return len(got) - len(by_id)
