"""End-to-end: two sidecars with one config (each its own admin port and state
dir, as on two hosts) and `lease = true` poll and file routes. Exactly one
holds each route's lease (`<name>.<route>.lease`, an exclusive queue); the
holder is SIGKILLed again and again under load and the other takes over.

Asserts: /readyz and /status.json name the holder and the standby; the lease
moves; every item the legacy API produced is published (no gap — duplicates
only under the same message_id, with the same body); the cursor a takeover
resumes from is the one stored in `<name>.<route>.cursor`; every record of
every dropped file is published and every file is filed once.
"""
import json
import signal
import time

import requests

from conftest import plain, run_cli, wait_for
from file_helpers import Route, csv_bytes, csv_expected, csv_rows, expected_id, listing
from ha_helpers import TAKEOVER_S, GrowingApi, assert_every_item, ha_config, poll_route, role
from http_poll_helpers import json_response, legacy_server

def start_pair(sidecar, config, uid, inbound, tmp_path, route):
    a = sidecar(ha_config(config, uid, inbound, tmp_path / "state-a"), name=f"{uid}-a")
    wait_for(lambda: role(a, route) == "holder", TAKEOVER_S, what="a holds the lease")
    b = sidecar(ha_config(config, uid, inbound, tmp_path / "state-b"), name=f"{uid}-b")
    wait_for(lambda: role(b, route) == "standby", TAKEOVER_S, what="b is standby")
    return a, b


def kill_and_take_over(sidecar, config, uid, inbound, tmp_path, holder, standby, route, n):
    """SIGKILLs the holder; the standby takes over; the killed one comes back as standby."""
    holder.kill()
    t0 = time.monotonic()
    wait_for(lambda: role(standby, route) == "holder", TAKEOVER_S, 0.02,
             what=f"takeover {n}")
    took = time.monotonic() - t0
    back = sidecar(ha_config(config, uid, inbound, tmp_path / f"state-{n}"), name=f"{uid}-{n}")
    wait_for(lambda: role(back, route) == "standby", TAKEOVER_S, what="the restarted one waits")
    return standby, back, took


def test_ha_poll_lease_moves_on_sigkill_and_no_item_is_lost(broker, sidecar, config, uid,
                                                            tmp_path):
    with legacy_server() as server:
        api = GrowingApi(server)
        queue, inbound = poll_route(broker, uid, server)
        holder, standby = start_pair(sidecar, config, uid, inbound, tmp_path, "items")
        status = requests.get(standby.admin + "/status.json", timeout=5).json()
        route = next(r for r in status["routes"] if r["name"] == "items")
        assert route["lease"]["role"] == "standby" and route["state"] == "standby"
        assert route["lease"]["queue"] == f"{uid}.items.lease"
        assert "standby: another sidecar holds the lease" in route["detail"]
        took = []
        for n in range(3):
            wait_for(lambda: broker.count(queue) > 100 * (n + 1), 20, what="items flowing")
            holder, standby, seconds = kill_and_take_over(sidecar, config, uid, inbound, tmp_path,
                                                          holder, standby, "items", n)
            took.append(seconds)
            # the new holder resumed from the cursor in the broker, not from its own (empty) one
            holder.wait_log(r"resuming from the cursor stored in .*items\.cursor", 10)
        assert_every_item(broker, uid, queue, api.stop())
        assert all(t < TAKEOVER_S for t in took)
        assert role(holder, "items") == "holder" and role(standby, "items") == "standby"
        assert holder.stop() == 0  # SIGTERM drains and closes: that hands the lease over
        wait_for(lambda: role(standby, "items") == "holder", TAKEOVER_S, what="handover")
        assert standby.stop() == 0


def test_ha_poll_frozen_holder_loses_the_lease_by_heartbeat(broker, sidecar, config, uid,
                                                            tmp_path):
    """A holder that stops answering without closing its socket (SIGSTOP: a hung host) is
    noticed by the broker's heartbeat check; the other takes over; the thawed one finds its
    connection gone, stops the route and waits as standby — nothing lost, nothing twice
    but under the same id."""
    with legacy_server() as server:
        api = GrowingApi(server)
        queue, inbound = poll_route(broker, uid, server)
        holder, standby = start_pair(sidecar, config, uid, inbound, tmp_path, "items")
        wait_for(lambda: broker.count(queue) > 100, 20, what="items flowing")
        holder.proc.send_signal(signal.SIGSTOP)
        try:
            # heartbeat 2 s: RabbitMQ closes a silent connection after about two of them
            wait_for(lambda: role(standby, "items") == "holder", 3 * 2 + TAKEOVER_S, 0.1,
                     what="takeover from the frozen holder")
        finally:
            holder.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: role(holder, "items") == "standby", 30, what="the thawed one waits")
        assert "lost the lease" in plain(holder.log())
        assert_every_item(broker, uid, queue, api.stop())
        assert holder.stop() == 0 and standby.stop() == 0


def test_ha_poll_broker_restart_leaves_one_holder_and_no_item_is_lost(broker, sidecar, config,
                                                                        uid, tmp_path):
    """Both sidecars lose their connection at once; the lease queue (exclusive) is gone with
    it, the cursor queue (durable) is not: whichever declares first holds the lease again and
    resumes from the stored cursor; the other waits."""
    with legacy_server() as server:
        api = GrowingApi(server)
        queue, inbound = poll_route(broker, uid, server)
        a, b = start_pair(sidecar, config, uid, inbound, tmp_path, "items")
        wait_for(lambda: broker.count(queue) > 100, 20, what="items flowing")
        broker.stop()
        broker.start()
        wait_for(lambda: sorted([role(a, "items"), role(b, "items")]) == ["holder", "standby"],
                 30, what="one holder, one standby after the restart")
        holder = a if role(a, "items") == "holder" else b
        before = broker.count(queue)
        wait_for(lambda: broker.count(queue) > before + 100, 20, what="items flowing again")
        assert_every_item(broker, uid, queue, api.stop())
        assert "holds the lease" in plain(holder.log()).split("reconnected to")[-1]
        assert a.stop() == 0 and b.stop() == 0


def test_ha_file_lease_moves_on_sigkill_and_every_file_is_published(broker, sidecar, config,
                                                                    uid, tmp_path):
    r = Route(str(tmp_path), uid, "drops", "csv", extra="lease = true; max_inflight = 16;")
    broker.declare_exchange(r.exchange, "topic")
    broker.declare_queue(r.queue, r.exchange, r.bind)
    inbound = r.config()
    holder, standby = start_pair(sidecar, config, uid, inbound, tmp_path, "drops")
    contents, names = [], []
    for n in range(3):
        for i in range(4):
            k = 4 * n + i  # every file differs: record ids derive from the content
            content = csv_bytes(["id", "name", "amount", "note", "empty"],
                                csv_rows(300 + 97 * k, seed=k))
            contents.append(content)
            names.append(f"f{n}-{i}.csv")
            r.drop(names[-1], content)
        before = broker.count(r.queue)
        wait_for(lambda: broker.count(r.queue) > before + 200, 20, what="records flowing")
        holder, standby, _ = kill_and_take_over(sidecar, config, uid, inbound, tmp_path, holder,
                                                standby, "drops", n)
    wait_for(lambda: len(listing(r.done)) >= len(contents), 60, what="every file in done_dir")
    time.sleep(0.5)
    assert listing(r.done) == sorted(names)  # each filed once (a second time: "<name>.<hash>")
    assert listing(r.processing) == [] and listing(r.dir) == [".processing"]
    want = {}
    for content in contents:
        for i, body in enumerate(csv_expected(content)):
            want[expected_id(content, i)] = body
    got = {}
    for props, body in broker.get_all(r.queue):
        assert want.get(props.message_id) == body.decode(), props.message_id
        got[props.message_id] = got.get(props.message_id, 0) + 1
    assert set(got) == set(want), f"{len(set(want) - set(got))} record(s) never published"
    # the last one started has only ever been standby: it never touched a file
    assert "standby: another sidecar holds the lease" in plain(standby.log())
    assert 'file "' not in plain(standby.log()), plain(standby.log())
    assert holder.stop() == 0 and standby.stop() == 0


def test_ha_single_sidecar_without_lease_declares_nothing_more(broker, sidecar, config, uid,
                                                               tmp_path):
    with legacy_server() as server:
        server.default = json_response(200, [])
        inbound = (f'{{ name = "p"; kind = "poll"; url = "{server.url("/x")}"; interval = 0.2; '
                   f'id = ".id"; exchange = "amq.topic"; routing_key = "k"; }}')
        s = sidecar(config(uid, inbound=inbound, extra=f'state_dir = "{tmp_path}/st";'))
        assert "lease" not in s.readyz().json()["routes"]["p"]
        assert not broker.exists(f"{uid}.p.cursor")
        assert "lease" not in plain(s.log())
        assert s.stop() == 0


def test_ha_lease_on_other_kinds_is_refused_and_topology_shows_the_cursor_queue(config, uid,
                                                                                tmp_path):
    bad = config(uid, inbound='{ name = "h"; kind = "http"; listen = "127.0.0.1:1"; '
                              'path = "/x"; exchange = "e"; lease = true; }')
    path = tmp_path / "bad.conf"
    path.write_text(bad)
    r = run_cli("check", "-c", str(path))
    assert r.returncode == 2
    assert "lease applies only to inbound poll and file routes" in r.stderr
    good = config(uid, inbound='{ name = "p"; kind = "poll"; url = "http://127.0.0.1:1/x"; '
                               'id = ".id"; exchange = "e"; lease = true; }',
                  extra=f'state_dir = "{tmp_path}/st";')
    path = tmp_path / "good.conf"
    path.write_text(good)
    r = run_cli("topology", "-c", str(path))
    assert r.returncode == 0, r.stderr
    queues = {q["name"]: q for q in json.loads(r.stdout)["queues"]}
    args = queues[f"{uid}.p.cursor"]["arguments"]
    assert args["x-max-length"] == 1 and args["x-overflow"] == "drop-head"
    assert f"{uid}.p.lease" not in queues  # exclusive: it lives and dies with a connection
