"""Fail-over on a real 3-node RabbitMQ cluster: the sidecar is given all three
node URLs; node 1 (the one it is connected to) is killed -9 mid-traffic. Quorum
queues keep every confirmed message; the sidecar reconnects to another node,
redeclares, and carries on — inbound publishing and outbound consuming."""
import json
import os
import threading
import time

import pytest
import requests

from conftest import Broker, free_port, make_config, wait_for


@pytest.fixture(scope="module")
def cluster(workdir):
    home = os.path.join(workdir, "cluster-home")  # one HOME: one Erlang cookie
    os.makedirs(home, exist_ok=True)
    nodes = [Broker(workdir, name=f"c{i}n") for i in range(3)]
    for n in nodes:
        n.env["HOME"] = home
    nodes[0].start()
    for n in nodes[1:]:
        n.start()
        n.ctl("stop_app")
        n.ctl("join_cluster", nodes[0].node)
        n.ctl("start_app")
    wait_for(lambda: nodes[0].ctl("cluster_status").count("@localhost") >= 3, 30, what="cluster")
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
