"""End-to-end: `tls = { ca; cert; key; verify; }` on outbound calls, against a real
HTTPS legacy server (python ssl) that demands a client certificate, with
certificates made by `openssl` here: a private CA, a client certificate, a server
certificate for 127.0.0.1, one for another host name, one that expired in 2020, and a CA
nobody uses.

A certificate problem is a retryable failure: with a two-step ladder the message
is called three times and then dead-lettered, its x-sidecar-error naming the
problem in plain words.
"""
import http.server
import os
import ssl
import subprocess
import threading

import pytest

from conftest import run_cli, wait_for
from http_poll_helpers import peek_all

FAST_RETRY = "retry = { delays = [0.2, 0.4]; }; circuit = { failures = 0; };"
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(d, name, ca, san):
    openssl("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
            cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\n" if san else "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
            cwd=d)
    os.chmod(os.path.join(d, f"{name}.key"), 0o600)


def issue_expired(d, name, ca, san):
    """A certificate that expired in 2020 (x509 -req cannot backdate; `openssl ca` can)."""
    openssl("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
            cwd=d)
    with open(os.path.join(d, f"{name}.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = dflt\n[dflt]\ndatabase = index.txt\nnew_certs_dir = .\n"
                "serial = serial\ndefault_md = sha256\npolicy = any\n"
                "[any]\ncommonName = supplied\n")
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\n")
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    openssl("ca", "-batch", "-notext", "-config", f"{name}.cnf", "-cert", f"{ca}.crt",
            "-keyfile", f"{ca}.key", "-in", f"{name}.csr", "-out", f"{name}.crt",
            "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
            "-extfile", f"{name}.ext", cwd=d)
    os.chmod(os.path.join(d, f"{name}.key"), 0o600)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *EC, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
                "-subj", f"/CN={ca}", cwd=d)
    issue(d, "server", "ca", "IP:127.0.0.1")
    issue(d, "elsewhere", "ca", "DNS:legacy.example")
    issue(d, "client", "ca", None)
    issue_expired(d, "expired", "ca", "IP:127.0.0.1")
    return lambda name: os.path.join(d, name)


class HttpsLegacy:
    """A legacy HTTPS API that requires a client certificate signed by `ca`."""

    def __init__(self, certs, server="server"):
        self.requests = []
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                peer = self.connection.getpeercert()
                with outer.cond:
                    outer.requests.append((self.path, body, peer))
                    outer.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs(f"{server}.crt"), certs(f"{server}.key"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(certs("ca.crt"))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return f"https://127.0.0.1:{self.port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def route(name, url, tls):
    return f'{{ name = "{name}"; kind = "http"; url = "{url}"; {FAST_RETRY} tls = {{ {tls} }}; }}'


def error_of(broker, queue):
    wait_for(lambda: broker.count(queue) == 1, 20, what=f"a dead letter in {queue}")
    props, _ = peek_all(broker, queue)[0]
    h = props.headers
    err = h["x-sidecar-error"]
    return (err.decode() if isinstance(err, bytes) else err), h["x-sidecar-attempts"]


def test_mutual_tls_and_certificate_problems(broker, sidecar, uid, certs):
    good = HttpsLegacy(certs)
    elsewhere = HttpsLegacy(certs, server="elsewhere")
    expired = HttpsLegacy(certs, server="expired")
    try:
        ca, cert, key = certs("ca.crt"), certs("client.crt"), certs("client.key")
        mtls = f'ca = "{ca}"; cert = "{cert}"; key = "{key}";'
        s = sidecar(name=uid, outbound=", ".join([
            route("ok", good.url("/ok"), mtls),
            route("nocert", good.url("/nocert"), f'ca = "{ca}";'),
            route("wrongca", good.url("/wrongca"),
                  f'ca = "{certs("other-ca.crt")}"; cert = "{cert}"; key = "{key}";'),
            route("wronghost", elsewhere.url("/wronghost"), mtls),
            route("expired", expired.url("/expired"), mtls),
        ]))
        for r in ("ok", "nocert", "wrongca", "wronghost", "expired"):
            broker.publish("", f"{uid}.{r}", b'{"v":1}', content_type="application/json")
        wait_for(lambda: len(good.requests) == 1, 15, what="the mTLS call")
        path, body, peer = good.requests[0]
        assert path == "/ok" and body == b'{"v":1}'
        assert dict(x[0] for x in peer["subject"])["commonName"] == "client"
        wait_for(lambda: broker.count(f"{uid}.ok") == 0, 10, what="ok acked")
        assert broker.count(f"{uid}.ok.dlq") == 0

        err, attempts = error_of(broker, f"{uid}.nocert.dlq")
        assert "TLS: client certificate required by the server and none configured" in err
        assert attempts == 3  # retried, then DLQ
        err, attempts = error_of(broker, f"{uid}.wrongca.dlq")
        assert "TLS: unknown CA" in err and attempts == 3
        err, attempts = error_of(broker, f"{uid}.wronghost.dlq")
        assert "TLS: host name mismatch" in err and attempts == 3
        err, attempts = error_of(broker, f"{uid}.expired.dlq")
        assert "TLS: expired" in err and attempts == 3
        assert len(good.requests) == 1 and not elsewhere.requests and not expired.requests
        assert open(key).read().splitlines()[1] not in s.log()  # the private key stays private
        assert s.stop() == 0
    finally:
        good.close()
        elsewhere.close()
        expired.close()


def test_check_refuses_half_a_client_certificate(config, tmp_path, certs):
    path = tmp_path / "c.conf"
    path.write_text(config("chk", outbound=route("r", "https://127.0.0.1:9/x",
                                                 f'cert = "{certs("client.crt")}";') + ", " +
                                           route("p", "http://127.0.0.1:9/x",
                                                 f'ca = "{certs("ca.crt")}";')))
    r = run_cli("check", "-c", str(path))
    assert r.returncode == 2
    assert "tls.cert and tls.key go together" in r.stderr
    assert "tls keys are set but url \"http://127.0.0.1:9/x\" is not https://" in r.stderr
