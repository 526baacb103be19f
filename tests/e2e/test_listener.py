"""Listeners under hostile clients: slow, half-open and silent connections must not
starve legitimate requests, the admin endpoint or the log, and must not hold SIGTERM.

The attackers connect from 127.0.0.2 or 127.0.0.3 (Linux routes all of 127/8 to lo),
the legitimate client from 127.0.0.1, so a per-address limit can tell them apart. The
sidecar starts with the soft fd limit systemd gives a service by default (1024; the
hard limit is left as it is): what an operator gets without LimitNOFILE=.
"""
import contextlib
import resource
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import free_port, wait_for

SYSTEMD_DEFAULT_SOFT_NOFILE = 1024
ATTACKERS = 2500  # more than the old fd limit by far; under the old 4096 connection limit


@contextlib.contextmanager
def soft_fd_limit(n):
    """Processes started inside inherit a soft RLIMIT_NOFILE of n."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def raise_own_fd_limit(need):
    """The test itself holds one socket per attacker: raise its soft limit, or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} is below the {need} sockets this test opens")
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Listener:
    """One sidecar with one http route (127.0.0.1), an exchange and a bound queue."""

    def __init__(self, broker, sidecar, uid, extra="", soft_nofile=None):
        self.broker = broker
        self.exchange, self.queue = f"{uid}.events", f"{uid}.sink"
        broker.declare_exchange(self.exchange)
        broker.declare_queue(self.queue, self.exchange, "#")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/orders"
        route = (f'{{ name = "orders"; kind = "http"; listen = "127.0.0.1:{self.port}"; '
                 f'path = "/orders"; exchange = "{self.exchange}"; routing_key = "order"; }}')
        with soft_fd_limit(soft_nofile) if soft_nofile else contextlib.nullcontext():
            self.sidecar = sidecar(name=uid, inbound=route, extra=extra)

    def post(self, timeout=10):
        return requests.post(self.url, data=b'{"id": 1}', timeout=timeout,
                             headers={"Content-Type": "application/json"})

    def log_lines(self):
        return len(self.sidecar.log().splitlines())


class SlowClients:
    """n connections from `source` that send the start of a request, then one byte a
    second (`trickle`) or nothing more. `gone()` counts those the server closed."""

    def __init__(self, port, n, source, start, trickle=True):
        self.socks = []
        for _ in range(n):
            s = socket.socket()
            s.bind((source, 0))
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(start)
            except OSError:
                s.close()
                continue
            s.setblocking(False)
            self.socks.append(s)
        self.opened = len(self.socks)
        self.closed = set()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._trickle if trickle else self._watch)
        self.thread.start()

    def _poll_closed(self, send):
        for s in self.socks:
            if s in self.closed:
                continue
            try:
                if send:
                    s.send(b"X")
                elif s.recv(1) == b"":
                    self.closed.add(s)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.closed.add(s)

    def _trickle(self):
        while not self.stopping.wait(1.0):
            self._poll_closed(send=True)

    def _watch(self):
        while not self.stopping.wait(0.2):
            self._poll_closed(send=False)

    def gone(self):
        return len(self.closed)

    def close(self):
        self.stopping.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def test_slow_clients_do_not_starve_a_legitimate_request(broker, sidecar, uid):
    """2500 connections from one address trickling a request line (slowloris) hold at
    most max_connections_per_ip slots for at most read_timeout; a request from another
    address gets its 202 at once, /readyz answers, and the log stays short."""
    raise_own_fd_limit(ATTACKERS + 500)
    t = Listener(broker, sidecar, uid, soft_nofile=SYSTEMD_DEFAULT_SOFT_NOFILE)
    lines_before = t.log_lines()
    attack = SlowClients(t.port, ATTACKERS, "127.0.0.2", b"POST /orders HTTP/1.1\r\nHost: x\r\n")
    try:
        time.sleep(1.5)  # the attack is in place, trickling
        started = time.monotonic()
        try:
            r = t.post(timeout=10)
            status = r.status_code
        except requests.RequestException as e:
            status = repr(e)
        took = time.monotonic() - started
        assert status == 202, f"legitimate request: {status} after {took:.1f}s"
        assert took < 5, f"legitimate request took {took:.1f}s"
        ready = t.sidecar.readyz()
        assert ready is not None and ready.status_code == 200, "/readyz did not answer"
        # The slots the attacker may hold are bounded; the rest were refused at accept.
        wait_for(lambda: attack.gone() >= attack.opened - 256, 5,
                 what="connections over max_connections_per_ip refused")
    finally:
        attack.close()
    time.sleep(1)
    lines = t.log_lines() - lines_before
    assert lines < 200, f"{lines} log lines for one attack:\n" + t.sidecar.log()[-3000:]
    assert t.sidecar.stop() == 0
    assert len(t.broker.get_all(t.queue)) == 1


def test_read_timeout_bounds_a_request_that_trickles(broker, sidecar, uid):
    """A byte every second resets any inactivity timeout; read_timeout bounds the whole
    request: request line and headers, or a body, trickled past it are closed. A kept-
    alive connection idle for longer than read_timeout (but not idle_timeout) is kept."""
    t = Listener(broker, sidecar, uid, extra="http = { read_timeout = 2; idle_timeout = 30; };")
    headers = SlowClients(t.port, 10, "127.0.0.2", b"POST /orders HTTP/1.1\r\nHost: x\r\n")
    body = SlowClients(t.port, 10, "127.0.0.3",
                       b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 1000\r\n\r\n{")
    try:
        session = requests.Session()
        session.headers["Content-Type"] = "application/json"
        assert session.post(t.url, data=b"{}", timeout=10).status_code == 202
        wait_for(lambda: headers.gone() == 10 and body.gone() == 10, 8,
                 what="trickling connections closed after read_timeout")
        time.sleep(3.5)  # idle on the kept-alive connection, past read_timeout
        assert session.post(t.url, data=b"{}", timeout=10).status_code == 202
    finally:
        headers.close()
        body.close()
    assert "within read_timeout" in t.sidecar.log()
    assert t.sidecar.stop() == 0


def test_sigterm_does_not_wait_for_clients_that_are_gone(broker, sidecar, uid):
    """Requests whose headers arrived but whose body never will — the client half-closed
    (MHD misses most such FINs) or just stopped sending — do not hold SIGTERM: the drain
    waits only for the upload that still makes progress, answers it 202, and exits 0
    long before drain_timeout."""
    t = Listener(broker, sidecar, uid, extra="drain_timeout = 20;")
    start = (b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Connection: close\r\nContent-Length: 100\r\n\r\n")
    half_closed = []
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", t.port))
        s.sendall(start)
        s.shutdown(socket.SHUT_WR)
        half_closed.append(s)
    silent = SlowClients(t.port, 100, "127.0.0.3", start, trickle=False)

    body = b'{"id": "slow but alive"}'
    alive = socket.create_connection(("127.0.0.1", t.port), timeout=10)
    alive.sendall(b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
    time.sleep(0.5)

    started = time.monotonic()
    t.sidecar.proc.send_signal(signal.SIGTERM)
    for i in range(len(body)):  # 3 s of progress, a byte at a time, during the drain
        alive.sendall(body[i:i + 1])
        time.sleep(3.0 / len(body))
    reply = alive.recv(4096)
    alive.close()
    try:
        code = t.sidecar.proc.wait(15)
    except subprocess.TimeoutExpired:
        code = None  # still draining
    took = time.monotonic() - started
    for s in half_closed:
        s.close()
    silent.close()
    assert reply.startswith(b"HTTP/1.1 202"), reply
    assert code == 0 and took < 8, (
        f"exit {code} after {took:.1f}s (drain_timeout 20 s):\n" + t.sidecar.log()[-3000:])
    assert t.sidecar.stop() == 0
    assert len(t.broker.get_all(t.queue)) == 1
