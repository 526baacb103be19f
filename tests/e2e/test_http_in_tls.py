"""End-to-end: TLS on the inbound listener (`tls = { cert; key; client_ca; }` on http and
soap inbound routes and the admin listener) and `message_id_from`, against a real
RabbitMQ, with certificates made by `openssl` here: a private CA, a server certificate
for 127.0.0.1, a client certificate from that CA, one from another CA, and a server
certificate that expires within 30 days.

With client_ca a client that presents no certificate, or one the CA did not issue, is
refused at the TLS handshake: requests raises SSLError, the access handler never runs,
nothing is published. A plain-HTTP request to the TLS port is refused the same way.
"""
import concurrent.futures
import json
import os
import socket
import ssl
import subprocess

import pytest
import requests

from conftest import free_port, run_cli, wait_for

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(d, name, ca, ext, days=30):
    openssl("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
            cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(ext + "\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", str(days), "-extfile",
            f"{name}.ext", cwd=d)
    os.chmod(os.path.join(d, f"{name}.key"), 0o600)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *EC, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "400",
                "-subj", f"/CN={ca}", cwd=d)
    server = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"
    issue(d, "server", "ca", server, days=365)
    issue(d, "soon", "ca", server, days=5)
    issue(d, "client", "ca", "extendedKeyUsage=clientAuth")
    issue(d, "stranger", "other-ca", "extendedKeyUsage=clientAuth")
    return lambda name: os.path.join(d, name)


def tls_block(certs, client_ca=True, server="server"):
    ca = f' client_ca = "{certs("ca.crt")}";' if client_ca else ""
    return f'tls = {{ cert = "{certs(server + ".crt")}"; key = "{certs(server + ".key")}";{ca} }};'


class Inbound:
    """A sidecar with an https route (and, optionally, more routes on the same address)."""

    def __init__(self, broker, sidecar, uid, certs, client_ca=True, route_extra="", more=""):
        self.broker = broker
        self.exchange = f"{uid}.events"
        self.queue = f"{uid}.sink"
        broker.declare_exchange(self.exchange, "topic")
        broker.declare_queue(self.queue, self.exchange, "#")
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}/orders"
        self.tls = tls_block(certs, client_ca)
        route = (f'{{ name = "orders"; kind = "http"; listen = "127.0.0.1:{self.port}"; '
                 f'path = "/orders"; exchange = "{self.exchange}"; routing_key = "order"; '
                 f'{self.tls} {route_extra} }}')
        self.sidecar = sidecar(name=uid, inbound=route + more)
        self.certs = certs

    def post(self, body=b'{"id": "evt_1"}', cert="client", headers=None, **kw):
        c = (self.certs(f"{cert}.crt"), self.certs(f"{cert}.key")) if cert else None
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return requests.post(self.url, data=body, headers=h, verify=self.certs("ca.crt"), cert=c,
                             timeout=10, **kw)

    def messages(self):
        return self.broker.get_all(self.queue)


def test_https_with_client_certificates(broker, sidecar, uid, certs):
    t = Inbound(broker, sidecar, uid, certs)
    r = t.post(b'{"id": "evt_1"}')
    assert r.status_code == 202, r.text
    [(props, body)] = t.messages()
    assert body == b'{"id": "evt_1"}' and props.message_id == r.json()["message_id"]

    # No certificate, a certificate from another CA: refused at the handshake.
    for cert in (None, "stranger"):
        with pytest.raises(requests.exceptions.SSLError):
            t.post(b'{"id": "evt_2"}', cert=cert)
    # Plain HTTP to the TLS port: the TLS layer cannot read it, the connection is closed.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(t.url.replace("https:", "http:"), data=b'{"id": "evt_3"}',
                      headers={"Content-Type": "application/json"}, timeout=10)
    # A client that does not trust our CA refuses us.
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(t.url, data=b"{}", verify=certs("other-ca.crt"),
                      cert=(certs("client.crt"), certs("client.key")), timeout=10)
    assert t.messages() == []
    # The sidecar still serves a good client afterwards, and says why it refused.
    assert t.post(b'{"id": "evt_4"}').status_code == 202
    assert len(t.messages()) == 1
    log = t.sidecar.log()
    assert "TLS handshake failed" in log
    t.sidecar.stop()
    assert t.sidecar.returncode == 0


def test_raw_handshake_without_certificate_gets_no_http(broker, sidecar, uid, certs):
    """Below requests: with TLS 1.2 and 1.3 alike the server never answers HTTP to a
    client without a certificate."""
    t = Inbound(broker, sidecar, uid, certs)
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = ssl.create_default_context(cafile=certs("ca.crt"))
        ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", t.port), timeout=10) as raw:
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: "
                              b"application/json\r\nContent-Length: 2\r\n\r\n{}")
                    data = s.recv(1000)
                    assert data == b"", data  # closed, never an HTTP answer
                    raise ConnectionResetError("closed without an answer")
    assert t.messages() == []


def test_https_without_client_ca_and_under_load(broker, sidecar, uid, certs):
    t = Inbound(broker, sidecar, uid, certs, client_ca=False)
    assert t.post(cert=None).status_code == 202

    def one(i):
        with requests.Session() as s:
            r = s.post(t.url, data=json.dumps({"id": f"evt_{i}"}),
                       headers={"Content-Type": "application/json"}, verify=certs("ca.crt"),
                       timeout=30)
            return r.status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(one, range(300)))
    assert statuses == [202] * 300
    # Kept-alive connections too: one session, many requests.
    with requests.Session() as s:
        for i in range(100):
            r = s.post(t.url, data=b"{}", headers={"Content-Type": "application/json"},
                       verify=certs("ca.crt"), timeout=10)
            assert r.status_code == 202
    wait_for(lambda: broker.count(t.queue) == 401, 20, what="401 messages")


def test_soap_route_and_admin_over_tls(broker, sidecar, uid, certs):
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange, "topic")
    broker.declare_queue(f"{uid}.sink", exchange, "#")
    port, admin = free_port(), free_port()
    tls = tls_block(certs, client_ca=False)
    text = (f'name = "{uid}";\nbroker = {{ url = "{broker.url}"; }};\n'
            f'admin = {{ listen = "127.0.0.1:{admin}"; {tls} }};\n'
            f'inbound = ( {{ name = "ws"; kind = "soap"; listen = "127.0.0.1:{port}"; '
            f'path = "/ws"; exchange = "{exchange}"; routing_key = "soap"; {tls} }} );\n')
    s = sidecar(text, ready=False)
    s.admin = f"https://127.0.0.1:{admin}"
    def ready():
        try:
            return requests.get(s.admin + "/readyz", verify=certs("ca.crt"),
                                timeout=2).status_code == 200
        except requests.ConnectionError:
            return False
    wait_for(ready, 20, what="readyz over https")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{admin}/readyz", timeout=5)
    envelope = (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
                b'<Ping xmlns="urn:x"/></s:Body></s:Envelope>')
    r = requests.post(f"https://127.0.0.1:{port}/ws", data=envelope, verify=certs("ca.crt"),
                      headers={"Content-Type": "text/xml", "SOAPAction": '"urn:Ping"'},
                      timeout=10)
    assert r.status_code == 202, r.text
    assert broker.count(f"{uid}.sink") == 1
    s.stop()
    assert s.returncode == 0


# ---- message_id_from ---------------------------------------------------------------------


def test_message_id_from_json_field(broker, sidecar, uid, certs):
    t = Inbound(broker, sidecar, uid, certs, route_extra='message_id_from = "json.data.id";')
    body = b'{"data": {"id": "evt_1NaB"}, "type": "charge.succeeded"}'
    first = t.post(body)
    again = t.post(body)  # the sender's retry: the same id
    assert first.status_code == again.status_code == 202
    assert first.json()["message_id"] == again.json()["message_id"] == "evt_1NaB"
    assert [p.message_id for p, _ in t.messages()] == ["evt_1NaB", "evt_1NaB"]
    # Idempotency-Key still wins.
    r = t.post(body, headers={"Idempotency-Key": "idem-9"})
    assert r.json()["message_id"] == "idem-9"
    # Numbers are ids too.
    assert t.post(b'{"data": {"id": 12345}}').json()["message_id"] == "12345"
    # Missing, not a scalar, too long, unprintable, not JSON: 400, nothing published.
    t.messages()
    for bad, why in ((b'{"data": {}}', "has no field"),
                     (b'{"data": {"id": {"x": 1}}}', "not a string"),
                     (json.dumps({"data": {"id": "x" * 256}}).encode(), "1 to 255"),
                     (json.dumps({"data": {"id": "a\nb"}}).encode(), "1 to 255"),
                     (b'{"data": {"id": ""}}', "1 to 255")):
        r = t.post(bad)
        assert r.status_code == 400, (bad, r.text)
        assert why in r.json()["error"] and "message_id_from" in r.json()["error"], r.text
    for bad in (b"not json", b'{"data": {"id": "a\\u0000b"}}'):  # jansson refuses NUL
        r = t.post(bad)
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"], r.text
    r = t.post(b"id=1", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415, r.text  # the route takes JSON only
    assert t.messages() == []


def test_message_id_from_header_on_soap(broker, sidecar, uid):
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange, "topic")
    broker.declare_queue(f"{uid}.sink", exchange, "#")
    port = free_port()
    s = sidecar(name=uid, inbound=(
        f'{{ name = "ws"; kind = "soap"; listen = "127.0.0.1:{port}"; path = "/ws"; '
        f'exchange = "{exchange}"; routing_key = "soap"; '
        f'message_id_from = "header.X-Request-Id"; }}'))
    envelope = (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
                b'<Ping xmlns="urn:x"/></s:Body></s:Envelope>')
    h = {"Content-Type": "text/xml", "SOAPAction": '"urn:Ping"', "X-Request-Id": "req-5"}
    url = f"http://127.0.0.1:{port}/ws"
    assert requests.post(url, data=envelope, headers=h, timeout=10).status_code == 202
    [(props, _)] = broker.get_all(f"{uid}.sink")
    assert props.message_id == "req-5"
    del h["X-Request-Id"]
    r = requests.post(url, data=envelope, headers=h, timeout=10)
    assert r.status_code == 500 and "X-Request-Id" in r.text
    assert broker.count(f"{uid}.sink") == 0
    s.stop()


# ---- check -----------------------------------------------------------------------------------


def check(tmp_path, broker, inbound, admin=""):
    path = tmp_path / "c.conf"
    path.write_text(f'name = "chk";\nbroker = {{ url = "{broker.url}"; }};\n{admin}\n'
                    f"inbound = (\n{inbound}\n);\n")
    return run_cli("check", "-c", str(path))


def http_route(name, port, tls, extra=""):
    return (f'{{ name = "{name}"; kind = "http"; listen = "127.0.0.1:{port}"; path = "/{name}";\n'
            f'  exchange = "x"; routing_key = "k"; {extra}\n  {tls} }}')


def test_check_tls_errors(broker, tmp_path, certs):
    good = tls_block(certs)
    r = check(tmp_path, broker, http_route("a", 9001, good))
    assert r.returncode == 0, r.stderr
    assert "https://127.0.0.1:9001/a" in r.stdout and "client certificates" in r.stdout, r.stdout

    mismatched = f'tls = {{ cert = "{certs("server.crt")}"; key = "{certs("client.key")}"; }};'
    r = check(tmp_path, broker, http_route("a", 9001, mismatched))
    assert r.returncode == 2 and "c.conf:7:" in r.stderr and "does not belong" in r.stderr, \
        r.stderr

    missing = f'tls = {{ cert = "{certs("nope.crt")}"; key = "{certs("server.key")}"; }};'
    r = check(tmp_path, broker, http_route("a", 9001, missing))
    assert r.returncode == 2 and "c.conf:7:" in r.stderr and "nope.crt" in r.stderr, r.stderr

    r = check(tmp_path, broker, http_route("a", 9001, f'tls = {{ cert = "{certs("server.crt")}"; }};'))
    assert r.returncode == 2 and "tls.key" in r.stderr, r.stderr

    not_pem = f'tls = {{ cert = "{certs("server.ext")}"; key = "{certs("server.key")}"; }};'
    r = check(tmp_path, broker, http_route("a", 9001, not_pem))
    assert r.returncode == 2 and "no PEM certificate" in r.stderr, r.stderr

    open_key = tmp_path / "open.key"
    open_key.write_bytes(open(certs("server.key"), "rb").read())
    open_key.chmod(0o644)
    r = check(tmp_path, broker, http_route(
        "a", 9001, f'tls = {{ cert = "{certs("server.crt")}"; key = "{open_key}"; }};'))
    assert r.returncode == 2 and "chmod 600" in r.stderr and "c.conf:7:" in r.stderr, r.stderr

    # Two routes on one address: the same tls block, or none on either.
    r = check(tmp_path, broker, http_route("a", 9001, good) + ",\n" + http_route("b", 9001, ""))
    assert r.returncode == 2 and "c.conf:8:" in r.stderr and "127.0.0.1:9001" in r.stderr, \
        r.stderr
    other = tls_block(certs, client_ca=False)
    r = check(tmp_path, broker, http_route("a", 9001, good) + ",\n" + http_route("b", 9001, other))
    assert r.returncode == 2 and "c.conf:10:" in r.stderr and 'route "a"' in r.stderr, r.stderr
    r = check(tmp_path, broker, http_route("a", 9001, good) + ",\n" + http_route("b", 9001, good))
    assert r.returncode == 0, r.stderr
    # The admin endpoint on a route's address shares its TLS too.
    r = check(tmp_path, broker, http_route("a", 9001, good),
              admin='admin = { listen = "127.0.0.1:9001"; };')
    assert r.returncode == 2 and "admin" in r.stderr and "c.conf:3:" in r.stderr, r.stderr

    # A certificate that expires within 30 days: a warning, not an error.
    r = check(tmp_path, broker, http_route("a", 9001, tls_block(certs, server="soon")))
    assert r.returncode == 0 and "expires" in r.stderr and "c.conf:7:" in r.stderr, r.stderr


def test_check_message_id_from(broker, tmp_path):
    r = check(tmp_path, broker, http_route("a", 9001, "", 'message_id_from = "json.id";'))
    assert r.returncode == 0, r.stderr
    for bad in ('"id"', '"json."', '"query.id"', '"header."'):
        r = check(tmp_path, broker, http_route("a", 9001, "", f"message_id_from = {bad};"))
        assert r.returncode == 2 and "message_id_from" in r.stderr and "c.conf:5:" in r.stderr, \
            r.stderr
    r = check(tmp_path, broker, '{ name = "w"; kind = "soap"; listen = "127.0.0.1:9002"; '
              'path = "/ws"; exchange = "x"; routing_key = "k"; message_id_from = "json.id"; }')
    assert r.returncode == 2 and "header." in r.stderr, r.stderr
