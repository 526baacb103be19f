"""End-to-end: credentials the sidecar presents to the legacy side (`auth = { … }` on
http out, soap out and poll), against a real RabbitMQ, a real OAuth 2.0 token endpoint
and a real legacy API, both started here.

The token endpoint issues tokens that really expire and counts every request; the
legacy API accepts only a token the endpoint issued and that has not expired or been
revoked. Each test asserts on what the servers saw and what is left in the queues,
and that no secret or token reaches the log, /metrics, /readyz or a dead letter.
"""
import base64
import json
import os
import signal
import threading
import time
import urllib.parse

import requests

from conftest import run_cli, wait_for
from http_poll_helpers import Response, json_response, legacy_server, peek_all

SECRET = "s3cr3t-client-secret-6d1f"
FAST_RETRY = "retry = { delays = [0.2, 0.4]; }; circuit = { failures = 0; };"


def secret_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content + "\n")
    os.chmod(path, 0o600)
    return str(path)


class TokenEndpoint:
    """An OAuth 2.0 client credentials endpoint: tokens tok-<n>-<random> living
    `lifetime` seconds; `down` makes it answer 503."""

    def __init__(self, server, client_id="sidecar", secret=SECRET, lifetime=3600):
        self.server = server
        self.client_id, self.secret, self.lifetime = client_id, secret, lifetime
        self.lock = threading.Lock()
        self.issued = {}  # token -> expiry (monotonic)
        self.requests = []
        self.down = False
        server.handler = self.answer

    def answer(self, req):
        with self.lock:
            self.requests.append(req)
            if self.down:
                return json_response(503, {"error": "temporarily_unavailable",
                                           "error_description": "maintenance"})
            form = dict(urllib.parse.parse_qsl(req.body.decode()))
            auth = req.header("Authorization") or ""
            if auth.startswith("Basic "):
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                user, pw = urllib.parse.unquote(user), urllib.parse.unquote(pw)
            else:
                user, pw = form.get("client_id"), form.get("client_secret")
            if form.get("grant_type") != "client_credentials" or \
                    (user, pw) != (self.client_id, self.secret):
                return json_response(401, {"error": "invalid_client"})
            token = f"tok-{len(self.issued) + 1}-{os.urandom(6).hex()}"
            self.issued[token] = time.monotonic() + self.lifetime
            return json_response(200, {"access_token": token, "token_type": "Bearer",
                                       "expires_in": self.lifetime})

    def count(self):
        with self.lock:
            return len(self.requests)

    def valid(self, token):
        with self.lock:
            return self.issued.get(token, 0) > time.monotonic()

    def revoke(self, token):
        with self.lock:
            self.issued[token] = 0

    def tokens(self):
        with self.lock:
            return list(self.issued)


def protected_api(api, idp, answer=None):
    """The legacy API: 401 unless the request carries a token idp issued and still honours."""
    def handle(req):
        auth = req.header("Authorization") or ""
        if not (auth.startswith("Bearer ") and idp.valid(auth[7:])):
            return json_response(401, {"error": "invalid_token"})
        return answer(req) if answer else json_response(200, {"ok": True})
    api.handler = handle


def oauth2_block(idp_url, secret_path, extra=""):
    return (f'auth = {{ oauth2 = {{ token_url = "{idp_url}"; client_id = "sidecar"; '
            f'client_secret_file = "{secret_path}"; scope = "orders.write"; '
            f'audience = "erp"; {extra} }}; }};')


def out_route(route, url, extra):
    return f'{{ name = "{route}"; kind = "http"; url = "{url}"; {extra} }}'


def metrics(s):
    return requests.get(s.admin + "/metrics", timeout=5).text


def metric(s, name, route):
    for line in metrics(s).splitlines():
        if line.startswith(f"amqp_sidecar_{name}{{") and f'route="{route}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def assert_nothing_leaks(s, secrets, dead_letters=()):
    texts = {"log": s.log(), "metrics": metrics(s), "readyz": s.readyz().text}
    for props, _ in dead_letters:
        texts["dead letter headers"] = json.dumps(props.headers or {}, default=str)
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret[:6]}… appears in the {where}"


def test_oauth2_one_token_shared_by_many_calls(broker, sidecar, uid, tmp_path):
    n = 30
    with legacy_server() as idp_srv, legacy_server() as api:
        idp = TokenEndpoint(idp_srv)
        protected_api(api, idp)
        secret = secret_file(tmp_path, "erp.secret", SECRET)
        s = sidecar(name=uid, outbound=out_route(
            "erp", api.url("/orders"),
            FAST_RETRY + " concurrency = 8; " + oauth2_block(idp_srv.url("/oauth/token"), secret)))
        q = f"{uid}.erp"
        for i in range(n):
            broker.publish("", q, b'{"n":%d}' % i, message_id=f"m-{i}",
                           content_type="application/json")
        reqs = api.wait_requests(n)
        wait_for(lambda: metric(s, "delivered_total", "erp") == n, 10, what="all acked")
        assert idp.count() == 1
        token = idp.tokens()[0]
        assert {r.header("Authorization") for r in reqs} == {"Bearer " + token}
        form = dict(urllib.parse.parse_qsl(idp.requests[0].body.decode()))
        assert form == {"grant_type": "client_credentials", "scope": "orders.write",
                        "audience": "erp"}  # the secret went as HTTP Basic, not in the body
        assert idp.requests[0].header("Content-Type") == "application/x-www-form-urlencoded"
        assert broker.count(q + ".dlq") == 0
        assert metric(s, "retries_total", "erp") == 0
        assert_nothing_leaks(s, [SECRET, token])
        assert s.stop() == 0


def test_oauth2_client_auth_post_and_routes_share_a_token(broker, sidecar, uid, tmp_path):
    with legacy_server() as idp_srv, legacy_server() as api:
        idp = TokenEndpoint(idp_srv)
        protected_api(api, idp)
        secret = secret_file(tmp_path, "erp.secret", SECRET)
        block = oauth2_block(idp_srv.url("/oauth/token"), secret, 'client_auth = "post";')
        s = sidecar(name=uid, outbound=out_route("a", api.url("/a"), FAST_RETRY + block) + ", " +
                    out_route("b", api.url("/b"), FAST_RETRY + block))
        broker.publish("", f"{uid}.a", b"{}", content_type="application/json")
        api.wait_requests(1)
        broker.publish("", f"{uid}.b", b"{}", content_type="application/json")
        reqs = api.wait_requests(2)
        assert sorted(r.path for r in reqs) == ["/a", "/b"]
        assert idp.count() == 1  # the second route reused the first one's token
        form = dict(urllib.parse.parse_qsl(idp.requests[0].body.decode()))
        assert form["client_id"] == "sidecar" and form["client_secret"] == SECRET
        assert idp.requests[0].header("Authorization") is None
        assert_nothing_leaks(s, [SECRET] + idp.tokens())
        assert s.stop() == 0


def test_oauth2_new_token_after_expiry(broker, sidecar, uid, tmp_path):
    with legacy_server() as idp_srv, legacy_server() as api:
        idp = TokenEndpoint(idp_srv, lifetime=2)
        protected_api(api, idp)
        secret = secret_file(tmp_path, "erp.secret", SECRET)
        s = sidecar(name=uid, outbound=out_route(
            "erp", api.url("/orders"), FAST_RETRY + oauth2_block(idp_srv.url("/t"), secret)))
        q = f"{uid}.erp"
        broker.publish("", q, b"{}", message_id="first", content_type="application/json")
        broker.publish("", q, b"{}", message_id="second", content_type="application/json")
        api.wait_requests(2)
        assert idp.count() == 1  # a two-second token is still reused
        time.sleep(2.2)  # past its life
        broker.publish("", q, b"{}", message_id="third", content_type="application/json")
        reqs = api.wait_requests(3)
        assert idp.count() == 2
        first, renewed = idp.tokens()
        assert reqs[2].header("Authorization") == "Bearer " + renewed
        # the old token was not offered again: every request was accepted first time
        assert len(api.snapshot()) == 3
        assert broker.count(q + ".dlq") == 0
        assert s.stop() == 0


def test_oauth2_401_refreshes_once_without_a_retry_attempt(broker, sidecar, uid, tmp_path):
    with legacy_server() as idp_srv, legacy_server() as api:
        idp = TokenEndpoint(idp_srv)
        protected_api(api, idp)
        secret = secret_file(tmp_path, "erp.secret", SECRET)
        s = sidecar(name=uid, outbound=out_route(
            "erp", api.url("/orders"),
            "retry = { delays = [60]; }; circuit = { failures = 0; }; " +
            oauth2_block(idp_srv.url("/t"), secret)))
        q = f"{uid}.erp"
        broker.publish("", q, b"{}", message_id="warm", content_type="application/json")
        api.wait_requests(1)
        idp.revoke(idp.tokens()[0])  # the legacy side stops honouring it early
        broker.publish("", q, b'{"x":1}', message_id="m-401", content_type="application/json")
        reqs = api.wait_requests(3)
        wait_for(lambda: broker.count(q) == 0, 10, what="queue drained")
        assert idp.count() == 2  # exactly one refresh
        assert [r.body for r in reqs[1:]] == [b'{"x":1}', b'{"x":1}']
        assert reqs[2].header("Authorization") == "Bearer " + idp.tokens()[1]
        # it arrived through the second call, not through the retry ladder
        # (a retry would wait 60 s in q.retry.1)
        assert broker.count(q + ".retry.1") == 0 and broker.count(q + ".dlq") == 0
        wait_for(lambda: metric(s, "delivered_total", "erp") == 2, 10, what="both acked")
        assert metric(s, "retries_total", "erp") == 0
        time.sleep(0.5)
        assert len(api.snapshot()) == 3
        assert s.stop() == 0


def test_oauth2_token_endpoint_down_retries_never_dead_letters(broker, sidecar, uid, tmp_path):
    with legacy_server() as idp_srv, legacy_server() as api:
        idp = TokenEndpoint(idp_srv)
        idp.down = True
        protected_api(api, idp, lambda req: json_response(400, {"error": "bad order"}))
        secret = secret_file(tmp_path, "erp.secret", SECRET)
        s = sidecar(name=uid, ready=False, outbound=out_route(
            "erp", api.url("/orders"), FAST_RETRY + oauth2_block(idp_srv.url("/t"), secret)))
        s.wait_log(r"route=erp msg=\"connected to", timeout=20)
        q = f"{uid}.erp"
        broker.publish("", q, b"{}", message_id="m-1", content_type="application/json")
        # A two-step ladder: counted attempts would have dead-lettered after three.
        wait_for(lambda: idp.count() >= 5, 20, what="several token requests")
        assert broker.count(q + ".dlq") == 0
        assert len(api.snapshot()) == 0  # no call went out without a token
        r = s.readyz()
        assert r.status_code == 503
        detail = r.json()["routes"]["erp"]["detail"]
        assert "token request to" in detail and "HTTP 503" in detail
        assert "temporarily_unavailable: maintenance" in detail
        assert "HTTP 503" in s.log() and "not sent" in s.log()
        assert metric(s, "retries_total", "erp") >= 3
        idp.down = False  # back: the message goes out, and is refused by the API → DLQ
        wait_for(lambda: broker.count(q + ".dlq") == 1, 20, what="the dead letter")
        wait_for(lambda: s.readyz().status_code == 200, 10, what="/readyz 200 again")
        dead = peek_all(broker, q + ".dlq")
        headers = dead[0][0].headers
        assert headers["x-sidecar-attempts"] == 1  # token failures counted no attempt
        assert "HTTP 400" in headers["x-sidecar-error"].decode() \
            if isinstance(headers["x-sidecar-error"], bytes) else headers["x-sidecar-error"]
        assert_nothing_leaks(s, [SECRET] + idp.tokens(), dead)
        assert s.stop() == 0


def test_oauth2_sighup_drops_the_cached_token(broker, sidecar, uid, tmp_path):
    with legacy_server() as idp_srv, legacy_server() as api:
        idp = TokenEndpoint(idp_srv)
        protected_api(api, idp)
        secret = secret_file(tmp_path, "erp.secret", SECRET)
        s = sidecar(name=uid, outbound=out_route(
            "erp", api.url("/orders"), FAST_RETRY + oauth2_block(idp_srv.url("/t"), secret)))
        q = f"{uid}.erp"
        broker.publish("", q, b"{}", content_type="application/json")
        api.wait_requests(1)
        idp.secret = "rotated-secret-99"
        secret_file(tmp_path, "erp.secret", "rotated-secret-99")
        s.proc.send_signal(signal.SIGHUP)
        s.wait_log("SIGHUP: secret files re-read")
        broker.publish("", q, b"{}", content_type="application/json")
        reqs = api.wait_requests(2)
        assert idp.count() == 2
        assert reqs[1].header("Authorization") == "Bearer " + idp.tokens()[1]
        assert_nothing_leaks(s, [SECRET, "rotated-secret-99"] + idp.tokens())
        assert s.stop() == 0


def test_static_credentials_basic_bearer_header(broker, sidecar, uid, tmp_path):
    pw = secret_file(tmp_path, "erp.pass", "pa:ss-w0rd")
    tok = secret_file(tmp_path, "erp.token", "static-bearer-123")
    key = secret_file(tmp_path, "erp.key", "api-key-456")
    with legacy_server() as api:
        routes = [
            out_route("basic", api.url("/basic"),
                      FAST_RETRY + f'auth = {{ basic = {{ user = "erp"; password_file = "{pw}"; '
                                   '}; };'),
            out_route("bearer", api.url("/bearer"),
                      FAST_RETRY + f'auth = {{ bearer_token_file = "{tok}"; }};'),
            out_route("header", api.url("/header"),
                      FAST_RETRY + f'auth = {{ header = "X-Api-Key"; value_file = "{key}"; }};'),
        ]
        s = sidecar(name=uid, outbound=", ".join(routes))
        for route in ("basic", "bearer", "header"):
            broker.publish("", f"{uid}.{route}", b"{}", content_type="application/json",
                           headers={"authorization": "from-the-message"})
        reqs = {r.path: r for r in api.wait_requests(3)}
        assert reqs["/basic"].header("Authorization") == \
            "Basic " + base64.b64encode(b"erp:pa:ss-w0rd").decode()
        assert reqs["/bearer"].header("Authorization") == "Bearer static-bearer-123"
        assert reqs["/header"].header("X-Api-Key") == "api-key-456"
        assert reqs["/header"].header("Authorization") is None
        # SIGHUP re-reads the files: the next call carries the new value.
        secret_file(tmp_path, "erp.token", "static-bearer-789")
        s.proc.send_signal(signal.SIGHUP)
        s.wait_log("SIGHUP: secret files re-read")
        broker.publish("", f"{uid}.bearer", b"{}", content_type="application/json")
        assert api.wait_requests(4)[3].header("Authorization") == "Bearer static-bearer-789"
        assert_nothing_leaks(s, ["pa:ss-w0rd", "static-bearer-123", "static-bearer-789",
                                 "api-key-456"])
        assert s.stop() == 0


def test_soap_out_and_poll_present_oauth2_tokens(broker, sidecar, uid, tmp_path):
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    broker.declare_queue(f"{uid}.polled", exchange, "#")
    with legacy_server() as idp_srv, legacy_server() as api:
        idp = TokenEndpoint(idp_srv)

        def answer(req):
            if req.method == "GET":
                return json_response(200, [{"id": "t-1"}])
            return Response(200, '<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/">'
                                 '<Body><ok/></Body></Envelope>', {"Content-Type": "text/xml"})
        protected_api(api, idp, answer)
        secret = secret_file(tmp_path, "erp.secret", SECRET)
        block = oauth2_block(idp_srv.url("/t"), secret)
        s = sidecar(name=uid, extra=f'state_dir = "{tmp_path}/state";',
                    outbound=f'{{ name = "ws"; kind = "soap"; url = "{api.url("/ws")}"; '
                             f'{FAST_RETRY} {block} }}',
                    inbound=f'{{ name = "feed"; kind = "poll"; url = "{api.url("/items")}"; '
                            f'interval = 60; id = ".id"; exchange = "{exchange}"; {block} }}')
        broker.publish("", f"{uid}.ws", b"<Update/>", content_type="application/xml")
        wait_for(lambda: broker.count(f"{uid}.polled") == 1, 15, what="the polled item")
        wait_for(lambda: any(r.method == "POST" for r in api.snapshot()), 15, what="SOAP call")
        assert all(r.header("Authorization") == "Bearer " + idp.tokens()[0]
                   for r in api.snapshot())
        assert idp.count() == 1  # the poll and the soap route share one token
        assert s.stop() == 0


def test_check_validates_auth_and_connect_fetches_a_token(broker, config, tmp_path):
    secret = secret_file(tmp_path, "erp.secret", SECRET)
    with legacy_server() as idp_srv:
        idp = TokenEndpoint(idp_srv)
        path = tmp_path / "ok.conf"
        path.write_text(config("chk", outbound=out_route(
            "erp", "http://127.0.0.1:9/x", oauth2_block(idp_srv.url("/t"), secret))))
        r = run_cli("check", "-c", str(path), "--connect")
        assert r.returncode == 0, r.stderr
        assert "auth.oauth2: got a token" in r.stdout and "auth oauth2" in r.stdout
        assert idp.count() == 1
        assert SECRET not in r.stdout + r.stderr and idp.tokens()[0] not in r.stdout + r.stderr
        idp.down = True
        r = run_cli("check", "-c", str(path), "--connect")
        assert r.returncode == 1 and "answered HTTP 503" in r.stderr

    loose = tmp_path / "loose.secret"
    loose.write_text("x\n")
    os.chmod(loose, 0o644)
    bad = tmp_path / "bad.conf"
    bad.write_text(config("chk", outbound=out_route(
        "erp", "http://127.0.0.1:9/x",
        f'auth = {{ oauth2 = {{ token_url = "http://idp.example/t"; '
        f'client_secret_file = "{loose}"; }}; bearer_token_file = "{secret}"; }};')))
    r = run_cli("check", "-c", str(bad))
    assert r.returncode == 2
    assert "auth sets 2 methods" in r.stderr
    assert "readable by group or others" in r.stderr and "chmod 600" in r.stderr
    assert f"{bad}:" in r.stderr


def test_poll_bearer_token_file_still_works_with_a_note(broker, config, tmp_path):
    tok = secret_file(tmp_path, "t.token", "poll-token")
    path = tmp_path / "poll.conf"
    path.write_text(config("chk", extra=f'state_dir = "{tmp_path}/state";', inbound=(
        '{ name = "feed"; kind = "poll"; url = "http://127.0.0.1:9/items"; id = ".id"; '
        f'exchange = "x"; bearer_token_file = "{tok}"; }}')))
    r = run_cli("check", "-c", str(path))
    assert r.returncode == 0, r.stderr
    assert "note: inbound route \"feed\": bearer_token_file is deprecated" in r.stderr
    assert "auth bearer" in r.stdout
