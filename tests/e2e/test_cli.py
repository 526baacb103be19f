"""The command line: check (with and without --connect), topology, exit codes,
--help/--version/keys, and refusing to run when an exchange is missing."""
import json
import os
import subprocess

from conftest import (assert_no_sanitizer_report, make_config, plain, run_cli, sidecar_bin,
                      wait_for)


def write(tmp_path, text, name="c.conf"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def http_route(name, exchange, port=18099, path="/in", extra=""):
    return (f'{{ name = "{name}"; kind = "http"; listen = "127.0.0.1:{port}"; path = "{path}"; '
            f'exchange = "{exchange}"; routing_key = "k"; {extra} }}')


def test_version_help_and_keys():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("amqp-sidecar ")
    r = run_cli("--help")
    assert r.returncode == 0
    for word in ("run", "check", "topology", "replay", "transform", "Exit codes"):
        assert word in r.stdout
    r = run_cli("keys")  # plain text, aligned: key, type, default; the meaning below
    assert r.returncode == 0 and "| `" not in r.stdout and "####" not in r.stdout
    line = next(l for l in r.stdout.splitlines() if l.split()[:1] == ["broker.heartbeat"])
    assert line.split() == ["broker.heartbeat", "integer", "30"]
    assert line.index("integer") == r.stdout.splitlines()[2].index("TYPE")
    assert 'Inbound "http"' in r.stdout
    r = run_cli("keys", "--markdown")  # the README's tables
    assert r.returncode == 0
    assert "| `broker.heartbeat` | integer | 30 |" in r.stdout
    assert "Inbound `http`" in r.stdout


def test_usage_errors_exit_2(tmp_path):
    assert run_cli("check").returncode == 2                     # no -c
    r = run_cli("frobnicate", "-c", "x.conf")
    assert r.returncode == 2 and "unknown command" in r.stderr
    assert run_cli("transform", "-c", "x.conf").returncode == 2  # no route
    assert run_cli("--bogus").returncode == 2


def test_unknown_option_is_one_line_and_usage():
    r = run_cli("check", "--foo")
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "amqp-sidecar: unknown option --foo; see amqp-sidecar --help",
        "usage: amqp-sidecar [COMMAND] -c FILE [OPTIONS]",
    ]


def test_check_valid(broker, tmp_path, uid):
    path = write(tmp_path, make_config(broker, uid, inbound=http_route("orders", "ex")))
    r = run_cli("check", "-c", path)
    assert r.returncode == 0, r.stderr
    assert "orders" in r.stdout and "http" in r.stdout
    assert "ok, 1 route" in r.stdout


def test_check_errors_name_file_and_line(broker, tmp_path, uid):
    text = make_config(broker, uid, inbound=http_route("orders", "ex", extra='mode = "sync"; lisen = "x";'))
    path = write(tmp_path, text)
    r = run_cli("check", "-c", path)
    assert r.returncode == 2
    line = [i + 1 for i, l in enumerate(text.splitlines()) if "lisen" in l][0]
    assert f"{path}:{line}: inbound route \"orders\": unknown key \"lisen\" (did you mean \"listen\"?)" in r.stderr
    assert f"{path}:{line}: inbound route \"orders\": mode = \"sync\" is not one of: event|rpc" in r.stderr
    assert "nothing was started" in r.stderr
    # run refuses the same way, before starting anything
    assert run_cli("run", "-c", path).returncode == 2


def test_check_auth_scheme_errors(broker, tmp_path, uid):
    bad = tmp_path / "bad.key"
    bad.write_text("not-whsec\n")
    os.chmod(bad, 0o600)
    routes = (http_route("a", "ex", extra=f'auth = {{ scheme = "standard";\n'
                                          f'hmac_secret_file = "{bad}";\ntolerance = 0; }};')
              + ",\n" + http_route("b", "ex", path="/b", extra='auth = { scheme = "gitlab"; };'))
    text = make_config(broker, uid, inbound=routes)
    path = write(tmp_path, text)
    r = run_cli("check", "-c", path)
    assert r.returncode == 2
    lines = text.splitlines()

    def line_of(word):
        return [i + 1 for i, l in enumerate(lines) if word in l][0]

    assert f"{path}:{line_of('hmac_secret_file')}:" in r.stderr and "whsec_" in r.stderr
    assert f"{path}:{line_of('tolerance')}:" in r.stderr and "tolerance = 0 is out of range" in r.stderr
    assert f"{path}:{line_of('gitlab')}:" in r.stderr
    assert 'scheme = "gitlab" is not one of: github|stripe|slack|shopify|standard' in r.stderr


def test_check_connect(broker, tmp_path, uid):
    broker.declare_exchange(f"{uid}.events")
    ok = write(tmp_path, make_config(broker, uid, inbound=http_route("orders", f"{uid}.events")), "ok.conf")
    r = run_cli("check", "-c", ok, "--connect")
    assert r.returncode == 0, r.stderr
    assert "1 exchange checked, all exist" in r.stdout
    # check must not create anything on the broker
    assert not broker.exists(f"{uid}.orders.dlq")

    missing = write(tmp_path, make_config(broker, uid, inbound=http_route("orders", f"{uid}.nope")
                                          + ", " + http_route("b", f"{uid}.nope2", path="/b")),
                    "missing.conf")
    r = run_cli("check", "-c", missing, "--connect")
    assert r.returncode == 1
    assert f'exchange "{uid}.nope", "{uid}.nope2" does not exist on vhost "/"' in r.stderr
    assert "declare it" in r.stderr


def test_check_connect_broker_unreachable(broker, tmp_path, uid):
    from conftest import free_port
    text = make_config(broker, uid, inbound=http_route("orders", "amq.topic"))
    text = text.replace(str(broker.port), str(free_port()))
    r = run_cli("check", "-c", write(tmp_path, text), "--connect")
    assert r.returncode == 1
    assert "no broker reachable" in r.stderr and "is RabbitMQ running" in r.stderr


def test_run_refuses_missing_exchange(broker, tmp_path, uid):
    path = write(tmp_path, make_config(broker, uid, inbound=http_route("orders", f"{uid}.absent")))
    r = run_cli("run", "-c", path, timeout=30)
    assert r.returncode == 1
    assert f'exchange "{uid}.absent" does not exist' in plain(r.stderr)


def test_check_bad_secret_mode(broker, tmp_path, uid):
    secret = tmp_path / "hmac.key"
    secret.write_text("k\n")
    os.chmod(secret, 0o644)
    path = write(tmp_path, make_config(broker, uid, inbound=http_route(
        "orders", "ex", extra=f'auth = {{ hmac_secret_file = "{secret}"; }};')))
    r = run_cli("check", "-c", path)
    assert r.returncode == 2
    assert f"chmod 600 {secret}" in r.stderr


def check_unset(path, var):
    """`check -c path` with var removed from the environment."""
    env = {k: v for k, v in os.environ.items() if k != var}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    r = subprocess.run([sidecar_bin(), "check", "-c", path], capture_output=True, text=True,
                       timeout=60, env=env)
    assert_no_sanitizer_report(r.stderr)
    return r


def test_check_environment_variables(broker, tmp_path, uid):
    required = "${SIDECAR_E2E_EXCHANGE:?the exchange orders go to}"
    text = make_config(broker, uid, inbound=http_route("orders", required,
                                                       path="${SIDECAR_E2E_PATH:-/in}"))
    path = write(tmp_path, text)
    r = run_cli("check", "-c", path, env={"SIDECAR_E2E_EXCHANGE": "crm.events"})
    assert r.returncode == 0, r.stderr
    assert "ok, 1 route" in r.stdout and "/in" in r.stdout

    line = [i + 1 for i, l in enumerate(text.splitlines()) if "SIDECAR_E2E_EXCHANGE" in l][0]
    where = f'{path}:{line}: inbound route "orders": exchange: '
    r = check_unset(path, "SIDECAR_E2E_EXCHANGE")
    assert r.returncode == 2
    assert where + "SIDECAR_E2E_EXCHANGE: the exchange orders go to" in r.stderr

    path = write(tmp_path, text.replace(required, "${SIDECAR_E2E_EXCHANGE}"), "plain.conf")
    where = f'{path}:{line}: inbound route "orders": exchange: '
    r = check_unset(path, "SIDECAR_E2E_EXCHANGE")
    assert r.returncode == 2
    assert (where + "environment variable SIDECAR_E2E_EXCHANGE is not set; set SIDECAR_E2E_EXCHANGE"
            " in the unit's Environment= or EnvironmentFile=, or give a default:"
            " ${SIDECAR_E2E_EXCHANGE:-…}") in r.stderr


def test_transform_dry_run_takes_one_document_or_json_lines(tmp_path):
    jq = tmp_path / "t.jq"
    jq.write_text("{id: .order.id, total: (.lines | map(.qty) | add)}\n")
    conf = write(tmp_path, 'name = "tr"; broker = { url = "amqp://127.0.0.1:9/%2f"; };\n'
                 f'inbound = ( {http_route("orders", "ex", extra=f"transform = {json.dumps(str(jq))};")} );\n')
    # One document, pretty-printed over several lines: one result.
    doc = '{\n  "order": {"id": "A-1"},\n  "lines": [{"qty": 2}, {"qty": 3}]\n}\n'
    r = run_cli("transform", "-c", conf, "orders", input=doc)
    assert (r.returncode, r.stdout, r.stderr) == (0, '{"id":"A-1","total":5}\n', "")
    # JSON Lines: a result per record, a blank line skipped, a bad line named by its number
    # while the others still run.
    lines = ('{"order": {"id": "A-1"}, "lines": [{"qty": 1}]}\n\n'
             '{"order": {"id": "A-2"}, "lines": "none"}\n'
             '{"order": {"id": "A-3"}, "lines": [{"qty": 4}, {"qty": 4}]}\n')
    r = run_cli("transform", "-c", conf, "orders", input=lines)
    assert r.returncode == 1
    assert r.stdout == '{"id":"A-1","total":1}\n{"id":"A-3","total":8}\n'
    assert f"{jq}: line 3: " in r.stderr and "1 of 3 lines failed" in r.stderr
    r = run_cli("transform", "-c", conf, "orders", input="not json")
    assert r.returncode == 1 and str(jq) in r.stderr and r.stdout == ""
