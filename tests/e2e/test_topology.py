"""`amqp-sidecar topology` exports exactly what the sidecar declares: definitions
that rabbitmqctl import_definitions accepts, yielding the same queues and
arguments as running the sidecar; conflicting existing queues are named with
the fix."""
import json


from conftest import make_config, plain, run_cli


def routes(uid, outbound=True):
    inbound = (f'{{ name = "orders"; kind = "http"; listen = "127.0.0.1:0"; path = "/o"; '
               f'exchange = "amq.topic"; routing_key = "k"; }}')
    out = ""
    if outbound:
        out = ('{ name = "customers"; kind = "http"; url = "http://127.0.0.1:9/"; '
               'retry = { delays = [1, 5, 30]; }; }, '
               '{ name = "ledger"; kind = "http"; url = "http://127.0.0.1:9/"; queue_type = "quorum"; '
               'ordered = true; }')
    return inbound, out


def topology_json(broker, tmp_path, uid, outbound):
    inbound, out = routes(uid, outbound)
    path = tmp_path / f"{uid}.conf"
    path.write_text(make_config(broker, uid, inbound=inbound, outbound=out))
    r = run_cli("topology", "-c", str(path))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), path


def test_topology_names_follow_the_design(broker, tmp_path, uid):
    defs, _ = topology_json(broker, tmp_path, uid, True)
    queues = {q["name"]: q["arguments"] for q in defs["queues"]}
    assert [e["name"] for e in defs["exchanges"]] == [f"{uid}.dlx"]
    assert queues[f"{uid}.orders.dlq"] == {"x-queue-type": "classic"}
    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in defs["bindings"]}
    assert (f"{uid}.dlx", f"{uid}.orders.dlq", f"{uid}.orders") in bindings
    q = f"{uid}.customers"
    assert queues[q] == {"x-queue-type": "classic", "x-dead-letter-exchange": f"{uid}.dlx",
                         "x-dead-letter-routing-key": q}
    for i, delay in enumerate([1, 5, 30], start=1):
        assert queues[f"{q}.retry.{i}"] == {"x-queue-type": "classic", "x-dead-letter-exchange": "",
                                            "x-dead-letter-routing-key": q,
                                            "x-message-ttl": delay * 1000}
    assert (f"{uid}.dlx", f"{q}.dlq", q) in bindings
    ledger = queues[f"{uid}.ledger"]
    assert ledger["x-queue-type"] == "quorum" and ledger["x-single-active-consumer"] is True
    assert f"{uid}.ledger.retry.1" not in queues  # ordered routes retry in place


def test_imported_definitions_match_what_the_sidecar_declares(broker, sidecar, tmp_path, uid):
    """Import system A's definitions; let the sidecar declare system B; compare."""
    a, b = uid + "a", uid + "b"
    defs_a, conf_a = topology_json(broker, tmp_path, a, True)
    defs_file = tmp_path / "defs.json"
    defs_file.write_text(json.dumps(defs_a))
    broker.ctl("import_definitions", str(defs_file))

    # The sidecar of A starts on the imported topology without any conflict.
    s = sidecar(conf_a.read_text(), name=a)
    s.stop()
    assert "already exists" not in s.log()

    # B is declared by the sidecar itself; its queues carry the same arguments.
    _, conf_b = topology_json(broker, tmp_path, b, True)
    sidecar(conf_b.read_text(), name=b).stop()
    for q in defs_a["queues"]:
        twin = q["name"].replace(a, b, 1)
        args_a = broker.queue_arguments(q["name"])
        args_b = broker.queue_arguments(twin)
        norm = lambda args: {k: (v.replace(a, b) if isinstance(v, str) else v) for k, v in args.items()}
        assert norm(args_a) == args_b, q["name"]


def test_conflicting_queue_is_named_with_the_fix(broker, tmp_path, uid):
    broker.declare_queue(f"{uid}.orders.dlq", arguments={"x-message-ttl": 1000})
    inbound, _ = routes(uid, outbound=False)
    path = tmp_path / "c.conf"
    path.write_text(make_config(broker, uid, inbound=inbound))
    r = run_cli("run", "-c", str(path), timeout=30)
    assert r.returncode == 1
    err = plain(r.stderr)
    assert f'queue "{uid}.orders.dlq" already exists on vhost "/" with other arguments' in err
    assert "x-message-ttl" in err
    assert f"rabbitmqctl delete_queue {uid}.orders.dlq" in err


def quorum_route(uid):
    return (f'{{ name = "billing"; kind = "http"; url = "http://127.0.0.1:9/"; '
            f'queue_type = "quorum"; retry = {{ delays = [2, 10]; }}; }}')


SAFE = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish",
        "x-delivery-limit": 1000000}


def test_quorum_queues_dead_letter_at_least_once(broker, sidecar, tmp_path, uid):
    """The retry ladder is dead-lettering: on quorum queues it must be at-least-once
    (which RabbitMQ honours only with reject-publish), and RabbitMQ 4.x's default
    delivery limit of 20 must not drop a message behind the sidecar's back."""
    path = tmp_path / "q.conf"
    path.write_text(make_config(broker, uid, outbound=quorum_route(uid)))
    r = run_cli("topology", "-c", str(path))
    assert r.returncode == 0, r.stderr
    queues = {q["name"]: q["arguments"] for q in json.loads(r.stdout)["queues"]}
    q = f"{uid}.billing"
    for name in (q, f"{q}.retry.1", f"{q}.retry.2"):  # the queues that dead-letter
        assert queues[name].items() >= SAFE.items(), name
    assert queues[f"{q}.dlq"] == {"x-queue-type": "quorum", "x-delivery-limit": 1000000}
    s = sidecar(path.read_text(), name=uid)
    s.stop()
    for name in (q, f"{q}.retry.1", f"{q}.retry.2"):
        assert broker.queue_arguments(name).items() >= SAFE.items(), name
    assert "without at-least-once" not in s.log()


def test_a_quorum_queue_of_an_older_sidecar_is_kept_with_the_fix(broker, sidecar, tmp_path, uid):
    """Declared before these arguments existed: RabbitMQ refuses a declare with other
    arguments, so the sidecar takes the queue as it is and names the policy that adds
    them in place; check --connect says the same before the upgrade."""
    q = f"{uid}.billing"
    broker.declare_queue(q, arguments={"x-queue-type": "quorum", "x-dead-letter-exchange":
                                       f"{uid}.dlx", "x-dead-letter-routing-key": q})
    path = tmp_path / "old.conf"
    path.write_text(make_config(broker, uid, outbound=quorum_route(uid)))
    r = run_cli("check", "-c", str(path), "--connect")
    assert r.returncode == 0, r.stderr
    warning = plain(r.stderr)
    assert f'warning: quorum queue "{q}" exists without at-least-once dead-lettering' in warning
    assert f"set_policy -p / --apply-to quorum_queues sidecar-safe-dl '^{q}$'" in warning
    assert f"{q}.retry.1" not in warning  # not there yet: the sidecar will create it right
    s = sidecar(path.read_text(), name=uid)
    s.wait_log("sidecar-safe-dl")
    assert "already exists" not in s.log()
    s.stop()
    assert broker.queue_arguments(f"{q}.retry.1").items() >= SAFE.items()
