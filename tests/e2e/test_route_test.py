"""`amqp-sidecar test`: route cases run through the real route code with the broker and
the legacy side played in-process — no RabbitMQ is started for these. Every example in
configs/ that has a <name>.tests.json passes; a wrong expectation fails with a per-field
diff (exit 1); a malformed tests file exits 2 naming its position; an unknown route and
an unknown key say so."""
import glob
import json
import os
import re

import pytest

from conftest import ROOT, run_cli, sandboxed_example

CONFIGS = os.path.join(ROOT, "configs")
EXAMPLES = sorted(glob.glob(os.path.join(CONFIGS, "*.tests.json")))


def config_of(tests_path):
    return tests_path[: -len(".tests.json")] + ".conf"


def write_tests(tmp_path, cases, name="t.tests.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"tests": cases}, indent=2))
    return str(path)


def test_every_example_has_tests_and_they_cover_the_runnable_kinds():
    names = {os.path.basename(p) for p in EXAMPLES}
    assert {"http-in.tests.json", "http-out.tests.json", "file-in.tests.json",
            "file-out.tests.json", "poll.tests.json", "soap.tests.json"} <= names
    for p in EXAMPLES:
        assert os.path.exists(config_of(p)), f"{p} has no config beside it"


@pytest.mark.parametrize("tests", EXAMPLES, ids=os.path.basename)
def test_example_passes(tests, tmp_path):
    # The secret files an example names must exist (they are the operator's); the
    # directories are the test's own. Without TESTS the sibling <name>.tests.json runs.
    conf = sandboxed_example(CONFIGS, os.path.basename(config_of(tests)), tmp_path / "ex")
    r = run_cli("test", "-c", conf)
    assert r.returncode == 0, r.stdout + r.stderr
    cases = json.load(open(tests))["tests"]
    lines = r.stdout.splitlines()
    assert lines[-1] == f"{len(cases)} passed, 0 failed"
    assert len([l for l in lines if l.startswith("ok   ")]) == len(cases)


def test_wrong_expectation_fails_with_a_diff_per_field(tmp_path):
    tests = json.load(open(os.path.join(CONFIGS, "http-in.tests.json")))
    first = tests["tests"][0]
    first["expect"]["status"] = 201
    first["expect"]["published"][0]["routing_key"] = "order.created"
    first["expect"]["published"][0]["headers"]["x-tenant"] = "globex"
    path = write_tests(tmp_path, tests["tests"])
    r = run_cli("test", "-c", os.path.join(CONFIGS, "http-in.conf"), path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert f"FAIL orders: {first['name']} — 3 fields differ" in out
    assert "    expect.status: expected 201, got 202" in out
    assert '    expect.published[0].routing_key: expected "order.created", got "order.paid"' in out
    assert '    expect.published[0].headers.x-tenant: expected "globex", got "acme"' in out
    n = len(tests["tests"])
    assert out.splitlines()[-1] == f"{n - 1} passed, 1 failed"


def test_outbound_diff_names_the_legacy_request_field(tmp_path):
    path = write_tests(tmp_path, [{
        "name": "url and outcome", "route": "customers",
        "delivery": {"body": {"customer": "c-1"}, "properties": {"message_id": "m 1/2"}},
        "response": {"status": 500, "body": "db down"},
        "expect": {"request": {"url": "http://127.0.0.1:9000/api/customer",
                               "headers": {"Idempotency-Key": "m 1/2"}},
                   "outcome": "ack"}}])
    r = run_cli("test", "-c", os.path.join(CONFIGS, "http-out.conf"), path)
    assert r.returncode == 1
    assert ('expect.request.url: expected "http://127.0.0.1:9000/api/customer", '
            'got "http://127.0.0.1:9000/api/customers"') in r.stdout
    assert 'expect.outcome: expected "ack", got "retry"' in r.stdout


def test_broker_nack_and_down_answer_503_and_a_missing_reply_times_out(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text('name = "t"; broker = { url = "amqp://127.0.0.1/%2f"; };\n'
                    'inbound = ( { name = "in"; kind = "http"; listen = "127.0.0.1:1"; '
                    'path = "/in"; exchange = "ex"; routing_key = "k.{header.X-Kind}"; },\n'
                    '  { name = "ask"; kind = "http"; listen = "127.0.0.1:1"; path = "/ask"; '
                    'exchange = "ex"; routing_key = "q"; mode = "rpc"; timeout = 0.5; } );\n')
    path = write_tests(tmp_path, [
        {"name": "nacked", "route": "in", "broker": "nack",
         "request": {"headers": {"X-Kind": "a"}, "body": {"a": 1}},
         "expect": {"status": 503, "headers": {"Retry-After": "5"},
                    "published": [{"routing_key": "k.a"}]}},
        {"name": "down", "route": "in", "broker": "down",
         "request": {"headers": {"X-Kind": "a"}, "body": {}},
         "expect": {"status": 503, "published": []}},
        {"name": "no key", "route": "in", "request": {"body": {}},
         "expect": {"status": 422, "body_contains": "header.X-Kind", "published": []}},
        {"name": "rpc reply", "route": "ask", "request": {"body": {"q": 1}},
         "reply": {"body": {"answer": 42}, "headers": {"x-http-status": "201"},
                   "content_type": "application/json"},
         "expect": {"status": 201, "body": {"answer": 42}}},
        {"name": "rpc without reply", "route": "ask", "request": {"body": {"q": 1}},
         "expect": {"status": 504}},
    ])
    r = run_cli("test", "-c", str(conf), path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "5 passed, 0 failed"


def test_malformed_tests_file_exits_2_naming_line_and_column(tmp_path):
    path = tmp_path / "bad.tests.json"
    path.write_text('{ "tests": [\n  { "route": "orders",\n    "expect": { "status": 202 }\n'
                    '    "request": {} }\n] }\n')
    r = run_cli("test", "-c", os.path.join(CONFIGS, "http-in.conf"), str(path))
    assert r.returncode == 2
    assert re.search(re.escape(str(path)) + r":4:\d+: ", r.stderr), r.stderr
    assert "missing comma" in r.stderr
    assert "passed" not in r.stdout


def test_bad_case_content_names_its_place_and_the_fix(tmp_path):
    path = write_tests(tmp_path, [
        {"route": "orders", "request": {}, "expect": {"status": 202}},
        {"route": "orders", "request": {"headers": {"X-N": 1}}, "expct": {"status": 202}},
        {"route": "orders", "request": {}, "expect": {"status": "202"}},
    ])
    r = run_cli("test", "-c", os.path.join(CONFIGS, "http-in.conf"), path)
    assert r.returncode == 2
    err = r.stderr
    assert f'{path}: tests[1].expct: unknown key; did you mean "expect"?' in err
    assert f'{path}: tests[1]: needs "expect"' in err
    assert f"{path}: tests[1].request.headers.X-N: must be a string" in err
    assert f"{path}: tests[2].expect.status: must be an integer" in err
    assert "4 problems; no case was run" in err
    assert "passed" not in r.stdout


def test_unknown_route_says_so_and_lists_the_routes(tmp_path):
    path = write_tests(tmp_path, [{"route": "ordres", "request": {}, "expect": {}}])
    r = run_cli("test", "-c", os.path.join(CONFIGS, "http-in.conf"), path)
    assert r.returncode == 2
    assert 'tests[0]: no route "ordres" in' in r.stderr
    assert "its routes are: orders" in r.stderr


def test_poll_holds_its_cursor_when_items_cannot_be_taken(tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text('name = "t"; broker = { url = "amqp://127.0.0.1/%2f"; };\n'
                    f'state_dir = "{tmp_path}/state";\n'
                    'inbound = ( { name = "feed"; kind = "poll"; url = "http://127.0.0.1:1/f?c={cursor}"; '
                    'items = ".[]"; id = ".id"; cursor = ".at"; exchange = "ex"; '
                    'routing_key = "k"; } );\n')
    path = write_tests(tmp_path, [
        {"name": "not JSON", "route": "feed", "cursor": "5",
         "response": {"headers": {"Content-Type": "application/json"}, "body": "<html>"},
         "expect": {"request": {"url": "http://127.0.0.1:1/f?c=5"}, "published": [],
                    "cursor": "5", "error_contains": "JSON"}},
        {"name": "one item", "route": "feed",
         "response": {"headers": {"Content-Type": "application/json"},
                      "body": [{"id": "a", "at": "7"}]},
         "expect": {"published": [{"properties": {"message_id": "a"}, "body": {"at": "7"}}],
                    "cursor": "7"}},
    ])
    r = run_cli("test", "-c", str(conf), path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "2 passed, 0 failed"


def test_help_teaches_the_format_and_no_tests_file_is_a_usage_error(tmp_path):
    r = run_cli("test", "--help")
    assert r.returncode == 0
    for word in ('"request"', '"delivery"', '"file"', "published", "routing_key", "outcome",
                 "Example", "Exit 0", "_contains"):
        assert word in r.stdout, word
    conf = tmp_path / "lonely.conf"
    conf.write_text(open(os.path.join(CONFIGS, "http-in.conf")).read().replace(
        '"orders.jq"', '"' + os.path.join(CONFIGS, "orders.jq") + '"'))
    r = run_cli("test", "-c", str(conf))
    assert r.returncode == 2
    assert "lonely.tests.json" in r.stderr
