"""Fail-over on a real 3-node RabbitMQ cluster: the sidecar is given all three
node URLs; node 1 (the one it is connected to) is killed -9 mid-traffic. Quorum
queues keep every confirmed message; the sidecar reconnects to another node,
redeclares, and carries on — inbound publishing and outbound consuming. And the
retry ladder, which is dead-lettering, holds on a cluster too: messages waiting
in a quorum retry tier come back to the work queue although the node hosting
that tier's leader is killed (at-least-once dead-lettering)."""
import json
import os
import threading
import time

import pika
import pytest
import requests

from conftest import Broker, free_port, make_config, run_cli, wait_for
from http_poll_helpers import json_response, legacy_server


def start_cluster(workdir, prefix):
    home = os.path.join(workdir, f"{prefix}-home")  # one HOME: one Erlang cookie
    os.makedirs(home, exist_ok=True)
    nodes = [Broker(workdir, name=f"{prefix}{i}n") for i in range(3)]
    for n in nodes:
        n.env["HOME"] = home
    nodes[0].start()
    for n in nodes[1:]:
        n.start()
        n.ctl("stop_app")
        n.ctl("join_cluster", nodes[0].node)
        n.ctl("start_app")
    wait_for(lambda: nodes[0].ctl("cluster_status").count("@localhost") >= 3, 30, what="cluster")
    return nodes


@pytest.fixture(scope="module")
def cluster(workdir):
    nodes = start_cluster(workdir, "c")
    yield nodes
    for n in nodes:
        n.destroy()


@pytest.fixture
def fresh_cluster(workdir):
    """A cluster of its own, for a test that kills a node the next test needs."""
    nodes = start_cluster(workdir, "r")
    yield nodes
    for n in nodes:
        n.destroy()


def test_failover_keeps_every_confirmed_message(cluster, sidecar, uid, tmp_path):
    n1, n2, n3 = cluster
    n1.declare_exchange(f"{uid}.events")   # the admin's exchange
    port = free_port()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    inbound = (f'{{ name = "orders"; kind = "http"; listen = "127.0.0.1:{port}"; path = "/o"; '
               f'exchange = "{uid}.events"; routing_key = "order.new"; queue_type = "quorum"; }}')
    outbound = (f'{{ name = "archive"; kind = "file"; queue = "{uid}.feed"; queue_type = "quorum"; '
                f'dir = "{out_dir}"; filename = "{{message_id}}.json"; }}')
    text = make_config(n1, uid, inbound=inbound, outbound=outbound)
    urls = ", ".join(f'"{n.url}"' for n in cluster)
    text = text.replace(f'url = "{n1.url}"', f"urls = [ {urls} ]")
    s = sidecar(text, name=uid)               # declares its quorum queue
    with n1.channel() as ch:                  # the admin binds it
        ch.queue_bind(f"{uid}.feed", f"{uid}.events", "order.#")

    accepted, stop = [], threading.Event()

    def client():
        i = 0
        while not stop.is_set():
            key = f"m{i}"
            i += 1
            try:
                r = requests.post(f"http://127.0.0.1:{port}/o", data=json.dumps({"k": key}), timeout=30,
                                  headers={"Content-Type": "application/json", "Idempotency-Key": key})
                if r.status_code == 202:
                    accepted.append(key)
                else:
                    time.sleep(0.05)
            except requests.RequestException:
                time.sleep(0.05)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(accepted) > 200, 30, what="traffic through node 1")
        n1.kill()
        before = len(accepted)
        try:
            wait_for(lambda: len(accepted) > before + 200, 60, what="traffic after fail-over")
        except AssertionError:
            all_lines = s.log().splitlines()
            lines = [l for l in all_lines if "answered 503" not in l] + all_lines[-5:]
            raise AssertionError("no traffic after fail-over; sidecar log:\n" + "\n".join(lines[-40:]))
    finally:
        stop.set()
        for t in threads:
            t.join()
    log = s.log()
    assert "connection lost" in log
    assert f"reconnected to amqp://guest@127.0.0.1:{n2.port}" in log or \
           f"reconnected to amqp://guest@127.0.0.1:{n3.port}" in log
    # every accepted message reaches the file system through the quorum queue
    wait_for(lambda: {p.stem for p in out_dir.iterdir()} >= set(accepted), 60,
             what="every accepted message written by the outbound route")
    s.stop()


def queue_leader(node, queue):
    out = node.ctl("list_queues", "name", "leader", "--formatter", "json")
    return next(q["leader"] for q in json.loads(out) if q["name"] == queue)


def fail_each_once(legacy):
    """Every message's first call gets 503, later ones 200: all of them wait in retry.1.
    Returns the monotonic times of the first calls."""
    seen, first = set(), []

    def handler(req):
        mid = req.header("Idempotency-Key")
        if mid in seen:
            return json_response(200, {"ok": True})
        seen.add(mid)
        first.append(time.monotonic())
        return json_response(503, {"error": "busy"})
    legacy.handler = handler
    return first


def billing_config(nodes, uid, legacy, concurrency):
    """A quorum http route with one 6 s retry tier, given every node's URL."""
    route = (f'{{ name = "billing"; kind = "http"; url = "{legacy.url()}"; '
             f'queue_type = "quorum"; concurrency = {concurrency}; retry = {{ delays = [6]; }}; '
             f'circuit = {{ failures = 0; }}; }}')
    text = make_config(nodes[0], uid, outbound=route)
    urls = ", ".join(f'"{n.url}"' for n in nodes)
    return text.replace(f'url = "{nodes[0].url}"', f"urls = [ {urls} ]")


def publish_and_fail_once(node, queue, n, legacy):
    """n persistent messages m0… to queue, confirmed; returns once each had its first call."""
    with node.channel() as ch:
        ch.confirm_delivery()
        for i in range(n):
            ch.basic_publish("", queue, json.dumps({"i": i}).encode(),
                             pika.BasicProperties(message_id=f"m{i}", delivery_mode=2))
    wait_for(lambda: len(legacy.snapshot()) >= n, 30, what="every message's first call")


def test_retry_tier_survives_its_leader_being_killed(fresh_cluster, sidecar, uid):
    nodes = fresh_cluster
    queue = f"{uid}.billing"
    with legacy_server() as legacy:
        fail_each_once(legacy)
        text = billing_config(nodes, uid, legacy, 8)
        s = sidecar(text, name=uid)
        n = 60
        publish_and_fail_once(nodes[0], queue, n, legacy)
        leader = queue_leader(nodes[0], f"{queue}.retry.1")
        victim = next(x for x in nodes if x.node == leader)
        alive = next(x for x in nodes if x is not victim)
        wait_for(lambda: alive.count(f"{queue}.retry.1") == n, 10,
                 what=f"all {n} messages waiting in the retry tier")
        victim.kill()  # within the tier's 6 s TTL: the messages are still waiting there
        wait_for(lambda: len(legacy.snapshot()) >= 2 * n, 90,
                 what="every message back from the retry tier and delivered again")
        ids = [r.header("Idempotency-Key") for r in legacy.snapshot()]
        assert sorted(set(ids)) == sorted(f"m{i}" for i in range(n))
        assert all(ids.count(f"m{i}") >= 2 for i in range(n))
        assert alive.count(f"{queue}.dlq") == 0
        s.stop()


def test_retry_tier_dead_letters_into_a_work_queue_whose_leader_is_killed(fresh_cluster, sidecar,
                                                                          uid, tmp_path):
    """The discriminating case: the tier's leader stays up, the *work queue's* leader (where
    expired retries are dead-lettered to) is killed just as the expiries start. At-most-once
    dead-lettering drops what it could not hand over during the election (declared as older
    sidecars did, 53 of 200 were gone in a trial run); the sidecar's at-least-once tiers keep
    each message until the work queue has taken it (200 of 200 delivered again or held)."""
    nodes = fresh_cluster
    queue = f"{uid}.billing"
    with legacy_server() as legacy:
        first = fail_each_once(legacy)
        text = billing_config(nodes, uid, legacy, 16)
        # The work queue, declared as the sidecar would but from node 2, leads there; the
        # sidecar (connected to node 1) declares the tier, which leads on node 1.
        conf = tmp_path / "topology.conf"
        conf.write_text(text)
        defs = json.loads(run_cli("topology", "-c", str(conf)).stdout)
        work = next(q for q in defs["queues"] if q["name"] == queue)
        with nodes[1].channel() as ch:
            ch.queue_declare(queue, durable=True, arguments=work["arguments"])
        s = sidecar(text, name=uid)
        assert queue_leader(nodes[0], queue) == nodes[1].node
        assert queue_leader(nodes[0], f"{queue}.retry.1") == nodes[0].node
        n = 200
        publish_and_fail_once(nodes[0], queue, n, legacy)
        wait_for(lambda: nodes[0].count(f"{queue}.retry.1") == n, 10,
                 what=f"all {n} messages waiting in the retry tier")
        time.sleep(max(0.0, first[0] + 5.9 - time.monotonic()))
        nodes[1].kill()  # the work queue's leader, as the first expiries are dead-lettered

        def second_calls():
            ids = [r.header("Idempotency-Key") for r in legacy.snapshot()]
            return sum(ids.count(f"m{i}") >= 2 for i in range(n))
        # RabbitMQ 3.10.8 (Debian 12) keeps what it could not hand over in the tier (counted
        # in its messages, not ready), but its dead-letter worker sends it on only some time
        # after the killed node is back, if at all (fixed upstream in rabbitmq-server#7677,
        # 3.10.20+). What must hold, and what at-most-once breaks: every message is either
        # delivered again or still held in the tier — none is gone.
        def held():
            out = nodes[0].ctl("list_queues", "name", "messages", check=False)
            row = next((line.split("\t") for line in out.splitlines()
                        if line.startswith(f"{queue}.retry.1\t")), None)
            return int(row[1]) if row else 0
        time.sleep(15)  # the election is over and what was dead-lettered has landed
        accounted = wait_for(lambda: (lambda d, h: (d, h) if d + h >= n else None)(
            second_calls(), held()), 30, what=f"all {n} delivered again or held in the tier")
        print(f"\n{accounted[0]} of {n} delivered again, {accounted[1]} held in the tier")
        assert nodes[0].count(f"{queue}.dlq") == 0
        s.stop()
