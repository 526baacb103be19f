"""`amqp-sidecar replay` on an inbound route: a message nobody's binding matched
is parked in <name>.<route>.dlq with the exchange and routing key it was published
to; once the RabbitMQ admin adds the binding, replay publishes it back there, with
mandatory + confirms, and takes it from the DLQ only after the confirm. One that is
still unroutable stays in the DLQ and is counted."""
import requests

from conftest import free_port, run_cli
from http_poll_helpers import peek_all


class Unbound:
    """A sidecar with one http route to an exchange with no binding (yet)."""

    def __init__(self, broker, sidecar, uid, routing_key="order.{header.X-Kind}"):
        self.broker = broker
        self.exchange = f"{uid}.events"
        self.queue = f"{uid}.sink"
        self.dlq = f"{uid}.orders.dlq"
        broker.declare_exchange(self.exchange, "topic")
        broker.declare_queue(self.queue)  # declared, bound to nothing
        self.port = free_port()
        route = (f'{{ name = "orders"; kind = "http"; listen = "127.0.0.1:{self.port}"; '
                 f'path = "/orders"; exchange = "{self.exchange}"; '
                 f'routing_key = "{routing_key}"; }}')
        self.sidecar = sidecar(name=uid, inbound=route)

    def post(self, kind, message_id, correlation_id):
        return requests.post(f"http://127.0.0.1:{self.port}/orders",
                             data=b'{"id": "%s"}' % message_id.encode(),
                             headers={"Content-Type": "application/json", "X-Kind": kind,
                                      "Idempotency-Key": message_id,
                                      "X-Correlation-ID": correlation_id}, timeout=10)

    def bind(self, key):
        with self.broker.channel() as ch:
            ch.queue_bind(self.queue, self.exchange, key)

    def replay(self, *args):
        return run_cli("replay", "-c", self.sidecar.config_path, "orders", *args)


def test_replay_publishes_parked_messages_back_to_their_exchange(broker, sidecar, uid):
    t = Unbound(broker, sidecar, uid)
    for kind, mid in (("a", "m1"), ("a", "m2"), ("b", "m3")):
        r = t.post(kind, mid, "c-" + mid)
        assert r.status_code == 202 and r.json()["routed"] is False, r.text
    parked = peek_all(broker, t.dlq)
    assert len(parked) == 3
    assert {p.headers["x-sidecar-routing-key"] for p, _ in parked} == {"order.a", "order.b"}
    assert all(p.headers["x-sidecar-exchange"] == t.exchange for p, _ in parked)

    # Nothing bound yet: a dry run says what it would do, and does nothing.
    t.bind("order.a")
    r = t.replay("--dry-run")
    assert r.returncode == 0, r.stderr
    assert f"3 message(s) in {t.dlq}; would publish 3" in r.stdout
    assert f'message_id=m1 to exchange "{t.exchange}" routing key "order.a"' in r.stdout
    assert f'message_id=m3 to exchange "{t.exchange}" routing key "order.b"' in r.stdout
    assert broker.count(t.dlq) == 3 and broker.count(t.queue) == 0

    r = t.replay("--max", "1")
    assert r.returncode == 0, r.stderr
    assert f"published 1 message(s) from {t.dlq}; 0 still unroutable; 2 left in {t.dlq}" \
        in r.stdout
    assert broker.count(t.dlq) == 2 and broker.count(t.queue) == 1

    # m2 goes; m3 (order.b) is unroutable again: it stays, and the run says so.
    r = t.replay()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "message_id=m3 is still unroutable" in r.stdout + r.stderr
    assert f"published 1 message(s) from {t.dlq}; 1 still unroutable; 1 left in {t.dlq}" \
        in r.stdout
    [(props, body)] = peek_all(broker, t.dlq)
    assert props.message_id == "m3" and body == b'{"id": "m3"}'
    assert props.headers["x-sidecar-routing-key"] == "order.b"

    moved = broker.get_all(t.queue)
    assert sorted(p.message_id for p, _ in moved) == ["m1", "m2"]
    for props, body in moved:
        assert body == b'{"id": "%s"}' % props.message_id.encode()
        assert props.correlation_id == "c-" + props.message_id
        assert props.content_type == "application/json"
        h = props.headers or {}
        assert h["x-sidecar-replayed-from"] == t.dlq
        for gone in ("x-sidecar-error", "x-sidecar-exchange", "x-sidecar-routing-key"):
            assert gone not in h

    t.bind("order.b")
    r = t.replay()
    assert r.returncode == 0, r.stderr
    assert f"published 1 message(s) from {t.dlq}; 0 still unroutable; 0 left in {t.dlq}" \
        in r.stdout
    [(props, _)] = broker.get_all(t.queue)
    assert props.message_id == "m3"


def test_replay_of_a_message_parked_without_its_address_uses_the_route(broker, sidecar, uid):
    """Parked by an older sidecar: no x-sidecar-exchange header. The route's own
    exchange and routing key are used, with a note; a templated routing key cannot
    be guessed, so such a message stays."""
    t = Unbound(broker, sidecar, uid, routing_key="order.fixed")
    broker.publish("", t.dlq, b"old", message_id="old-1",
                   headers={"x-sidecar-error": "unroutable: …"})
    t.bind("order.fixed")
    r = t.replay()
    assert r.returncode == 0, r.stderr
    assert "has no x-sidecar-exchange header (parked by an older version)" in r.stderr
    assert f"published 1 message(s) from {t.dlq}; 0 still unroutable; 0 left" in r.stdout
    [(props, body)] = broker.get_all(t.queue)
    assert props.message_id == "old-1" and body == b"old"


def test_replay_leaves_an_old_message_when_the_routing_key_is_a_template(broker, sidecar, uid):
    t = Unbound(broker, sidecar, uid)
    broker.publish("", t.dlq, b"old", message_id="old-2")
    t.bind("#")
    r = t.replay()
    assert r.returncode == 1
    assert "routing_key is a template" in r.stderr
    assert broker.count(t.dlq) == 1 and broker.count(t.queue) == 0
