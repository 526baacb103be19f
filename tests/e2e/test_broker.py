"""The broker core against real brokers: TLS with peer verification and
client certificates, fail-over across `urls`, a blocked connection as
backpressure, and heartbeats keeping an idle connection alive."""
import concurrent.futures
import os
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import Broker, free_port, make_config, plain, run_cli, wait_for


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d, server_names="DNS:localhost"):
    """A CA, a server certificate for server_names, and a client certificate."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, sans in (("server", server_names), ("client", "DNS:sidecar")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
                f"{name}.key", "-out", f"{name}.csr", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName={sans}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
                cwd=d)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o600 if f.endswith(".key") else 0o644)


@pytest.fixture(scope="module")
def tls_broker(workdir):
    """A second RabbitMQ with a TLS listener requiring client certificates."""
    b = Broker(workdir, name="tls")
    pki = os.path.join(b.dir, "pki")
    os.makedirs(pki)
    make_pki(pki)
    b.tls_port = free_port()
    b.pki = pki
    with open(os.path.join(b.dir, "rabbitmq.conf"), "a") as f:
        f.write(f"listeners.ssl.default = 127.0.0.1:{b.tls_port}\n"
                f"ssl_options.cacertfile = {pki}/ca.pem\n"
                f"ssl_options.certfile = {pki}/server.pem\n"
                f"ssl_options.keyfile = {pki}/server.key\n"
                "ssl_options.verify = verify_peer\n"
                "ssl_options.fail_if_no_peer_cert = true\n")
    # rabbitmq runs as root here; the key must be readable by it (it is).
    b.start()
    yield b
    b.destroy()


def tls_config(b, uid, host="localhost", tls="", exchange="amq.topic"):
    route = (f'{{ name = "in"; kind = "http"; listen = "127.0.0.1:{free_port()}"; path = "/in"; '
             f'exchange = "{exchange}"; routing_key = "k"; }}')
    text = make_config(b, uid, inbound=route)
    return text.replace(f'url = "{b.url}"',
                        f'url = "amqps://guest:guest@{host}:{b.tls_port}/%2f"; tls = {{ {tls} }}')


def test_tls_with_ca_and_client_certificate(tls_broker, sidecar, uid):
    p = tls_broker.pki
    text = tls_config(tls_broker, uid, tls=f'ca = "{p}/ca.pem"; cert = "{p}/client.pem"; key = "{p}/client.key";')
    s = sidecar(text, name=uid)
    assert "connected to amqps://guest@localhost" in s.log()
    s.stop()


def test_tls_untrusted_server_is_refused_with_a_hint(tls_broker, tmp_path, uid):
    p = tls_broker.pki
    conf = tmp_path / "c.conf"
    conf.write_text(tls_config(tls_broker, uid, tls=f'cert = "{p}/client.pem"; key = "{p}/client.key";'))
    r = run_cli("check", "-c", str(conf), "--connect")
    assert r.returncode == 1
    assert "set broker.tls.ca" in r.stderr


def test_tls_host_name_is_verified(tls_broker, tmp_path, uid, workdir):
    p = tls_broker.pki
    conf = tmp_path / "c.conf"
    # the certificate names localhost, not 127.0.0.1
    conf.write_text(tls_config(tls_broker, uid, host="127.0.0.1",
                               tls=f'ca = "{p}/ca.pem"; cert = "{p}/client.pem"; key = "{p}/client.key";'))
    r = run_cli("check", "-c", str(conf), "--connect")
    assert r.returncode == 1
    assert "certificate does not name this host" in r.stderr


def test_tls_without_client_certificate_is_refused(tls_broker, tmp_path, uid):
    conf = tmp_path / "c.conf"
    conf.write_text(tls_config(tls_broker, uid, tls=f'ca = "{tls_broker.pki}/ca.pem";'))
    r = run_cli("check", "-c", str(conf), "--connect")
    assert r.returncode == 1


def test_tls_verify_off_still_encrypts(tls_broker, tmp_path, uid):
    p = tls_broker.pki
    conf = tmp_path / "c.conf"
    conf.write_text(tls_config(tls_broker, uid, host="127.0.0.1",
                               tls=f'verify = false; cert = "{p}/client.pem"; key = "{p}/client.key";'))
    r = run_cli("check", "-c", str(conf), "--connect")
    assert r.returncode == 0, r.stderr


def test_tls_key_must_be_private(tls_broker, tmp_path, uid):
    p = tls_broker.pki
    key = tmp_path / "open.key"
    key.write_bytes(open(f"{p}/client.key", "rb").read())
    os.chmod(key, 0o644)
    conf = tmp_path / "c.conf"
    conf.write_text(tls_config(tls_broker, uid, tls=f'ca = "{p}/ca.pem"; cert = "{p}/client.pem"; key = "{key}";'))
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 2 and "chmod 600" in r.stderr


def test_failover_across_urls(broker, sidecar, uid):
    dead = free_port()
    route = (f'{{ name = "in"; kind = "http"; listen = "127.0.0.1:{free_port()}"; path = "/in"; '
             f'exchange = "amq.topic"; routing_key = "k"; }}')
    text = make_config(broker, uid, inbound=route).replace(
        f'url = "{broker.url}"', f'urls = [ "amqp://guest:guest@127.0.0.1:{dead}/%2f", "{broker.url}" ]')
    s = sidecar(text, name=uid)
    log = plain(s.log())
    assert f"127.0.0.1:{dead}/%2f: cannot connect" in log
    assert f"connected to amqp://guest@127.0.0.1:{broker.port}/%2f" in log


def test_blocked_connection_is_backpressure(broker, sidecar, uid):
    port = free_port()
    broker.declare_queue(f"{uid}.q", "amq.topic", f"{uid}.k")
    route = (f'{{ name = "in"; kind = "http"; listen = "127.0.0.1:{port}"; path = "/in"; '
             f'exchange = "amq.topic"; routing_key = "{uid}.k"; }}')
    text = make_config(broker, uid, inbound=route).replace("connect_timeout = 2;",
                                                           "connect_timeout = 2; confirm_timeout = 2;")
    s = sidecar(text, name=uid)
    url = f"http://127.0.0.1:{port}/in"
    post = lambda: requests.post(url, data=b"{}", headers={"Content-Type": "application/json"}, timeout=30)
    assert post().status_code == 202
    broker.ctl("set_vm_memory_high_watermark", "0.000001")
    try:
        # The broker blocks a connection when it next publishes: that request
        # waits (its confirm is held back) until confirm_timeout, then 503.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(post)
            s.wait_log("broker blocked publishing", timeout=20)
            # The status page says so, for the connection and the route.
            st = requests.get(s.admin + "/status.json", timeout=5).json()
            assert st["connections"][0]["state"] == "blocked", st["connections"]
            assert st["routes"][0]["state"] == "blocked", st["routes"]
            assert 'class="badge warn">blocked<' in requests.get(s.admin + "/", timeout=5).text
            r = post()
            assert r.status_code == 503 and "Retry-After" in r.headers
            assert "blocking publishes" in r.json()["error"]
            # Every request gets 503 now: the route is not ready (a load balancer
            # should send traffic elsewhere), and /readyz says why.
            ready = s.readyz()
            assert ready.status_code == 503
            assert "blocking publishes" in ready.json()["routes"]["in"]["detail"]
            held = first.result()
            assert held.status_code == 503 and "not confirmed in time" in held.json()["error"]
    finally:
        broker.ctl("set_vm_memory_high_watermark", "0.4")
    s.wait_log("unblocked", timeout=30)
    wait_for(lambda: post().status_code == 202, 20, what="202 after unblock")
    assert s.readyz().status_code == 200
    # the held message may still have been stored: at least the two 202s are there
    assert broker.count(f"{uid}.q") >= 2


def test_heartbeats_keep_an_idle_connection(broker, sidecar, uid):
    route = (f'{{ name = "in"; kind = "http"; listen = "127.0.0.1:{free_port()}"; path = "/in"; '
             f'exchange = "amq.topic"; routing_key = "k"; }}')
    text = make_config(broker, uid, inbound=route).replace("heartbeat = 5;", "heartbeat = 1;")
    s = sidecar(text, name=uid)
    time.sleep(4)  # several heartbeat intervals with no traffic
    assert "connection lost" not in s.log()
    names = broker.ctl("list_connections", "client_properties")
    assert f"amqp-sidecar/{uid}/publisher" in names


class SilentPeer:
    """Accepts TCP connections and never says a word: an AMQP handshake with it
    waits out connect_timeout."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.held = []
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.sock.getsockname()[1]}/%2f"

    def _accept(self):
        while not self.stopping.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                pass

    def close(self):
        self.stopping.set()
        for c in self.held:
            c.close()
        self.sock.close()


def test_a_silent_broker_does_not_stall_the_listener(broker, sidecar, uid):
    """The route listeners run in the publisher connection's loop, and opening
    that connection can take seconds (here: a peer that accepts TCP and never
    speaks AMQP, so the handshake waits out connect_timeout, again and again).
    Meanwhile every request must still be answered at once: 503 with
    Retry-After, not a hang. Then, with the real broker, 202."""
    silent = SilentPeer()
    port = free_port()
    broker.declare_queue(f"{uid}.q", "amq.topic", f"{uid}.k")
    route = (f'{{ name = "in"; kind = "http"; listen = "127.0.0.1:{port}"; path = "/in"; '
             f'exchange = "amq.topic"; routing_key = "{uid}.k"; }}')
    text = make_config(broker, uid, inbound=route).replace(
        f'url = "{broker.url}"; heartbeat = 5; connect_timeout = 2;',
        f'urls = [ "{silent.url}", "{broker.url}" ]; heartbeat = 5; connect_timeout = 4;')
    assert silent.url in text
    try:
        s = sidecar(text, name=uid, ready=False)
        wait_for(lambda: silent.held, 10, what="the sidecar connecting to the silent peer")
        post = lambda: requests.post(f"http://127.0.0.1:{port}/in", data=b"{}", timeout=2,
                                     headers={"Content-Type": "application/json"})
        answers = [post() for _ in range(5)]  # within the 4 s handshake wait
        assert [r.status_code for r in answers] == [503] * 5
        assert all("Retry-After" in r.headers for r in answers)
        # after the silent peer's timeout, the next URL is the real broker
        s.wait_ready(timeout=30)
        assert post().status_code == 202
    finally:
        silent.close()


def test_a_stop_while_connecting_waits_for_the_attempt_and_leaks_nothing(broker, sidecar, uid):
    """SIGTERM while the connection is still being opened on its own thread: the
    sidecar waits for that attempt (at most connect_timeout), drops what it
    opened and exits cleanly (ASan checks the rest at stop)."""
    silent = SilentPeer()
    route = (f'{{ name = "in"; kind = "http"; listen = "127.0.0.1:{free_port()}"; path = "/in"; '
             f'exchange = "amq.topic"; routing_key = "{uid}.k"; }}')
    text = make_config(broker, uid, inbound=route).replace(
        f'url = "{broker.url}"; heartbeat = 5; connect_timeout = 2;',
        f'url = "{silent.url}"; heartbeat = 5; connect_timeout = 3;')
    try:
        s = sidecar(text, name=uid, ready=False)
        wait_for(lambda: silent.held, 10, what="the sidecar connecting to the silent peer")
        assert s.stop(timeout=30) == 0
        assert "stopped (exit 0)" in s.log()
    finally:
        silent.close()
