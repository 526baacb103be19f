"""End-to-end test harness: a real RabbitMQ per test session, real sidecars.

One broker is started per pytest session on free loopback ports with a
throwaway data directory, and always stopped (by node name) at the end.
Tests that stop or kill it must leave it running again (broker.start()).

The sidecar under test is build/asan/amqp-sidecar (ASan + UBSan) unless
SIDECAR_BIN says otherwise; after every sidecar exits its stderr is checked
for sanitizer reports, so every e2e test is also a memory-safety test.

Fixtures:
  broker        the session's RabbitMQ (see Broker)
  uid           a short unique string; use it in system names so tests never
                share queues
  sidecar       factory: sidecar(config_text) -> Sidecar, started and ready
  config        factory: config(uid, inbound="...", outbound="...") -> text
"""
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import time

import pika
import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RABBIT_BIN = "/usr/lib/rabbitmq/bin"
LSAN_OPTIONS = "suppressions=" + os.path.join(ROOT, "tests", "lsan.supp")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "AddressSanitizer:DEADLYSIGNAL")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Broker:
    """A private RabbitMQ node started with the Debian scripts (no systemd)."""

    def __init__(self, base, name="t"):
        self.dir = tempfile.mkdtemp(prefix="rabbit-", dir=base)
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"{name}{os.getpid()}x{random.randint(0, 9999)}@localhost"
        self.env = dict(os.environ)
        self.env.update({
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq"),
            "HOME": self.dir,
        })
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
            f.write("loopback_users = none\n")
        self.proc = None
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"

    def ctl(self, *args, check=True, timeout=60):
        r = subprocess.run([f"{RABBIT_BIN}/rabbitmqctl", "-n", self.node, "-q", *args],
                           env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"rabbitmqctl {' '.join(args)} failed: {r.stderr}{r.stdout}")
        return r.stdout

    def start(self, timeout=60):
        out = open(os.path.join(self.dir, "out"), "ab")
        self.proc = subprocess.Popen([f"{RABBIT_BIN}/rabbitmq-server"], env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=self.dir)  # where a crashing node's dump goes
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("rabbitmq-server exited; see " + self.dir)
            r = subprocess.run([f"{RABBIT_BIN}/rabbitmqctl", "-n", self.node, "-q", "status"],
                               env=self.env, capture_output=True, timeout=30)
            if r.returncode == 0 and self.accepts():
                return
            time.sleep(0.3)
        raise AssertionError("rabbitmq-server did not become ready")

    def accepts(self):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def stop(self):
        """A clean stop (the node finishes writing what it confirmed)."""
        if self.proc is None:
            return
        self.ctl("stop", check=False)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        self.kill()

    def kill(self):
        """kill -9 of the whole node: what it had not confirmed may be gone."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None
        wait_for(lambda: not self.accepts(), 10, what="broker port to close")

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- AMQP helpers (pika) -------------------------------------------------
    @contextlib.contextmanager
    def channel(self):
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.port, heartbeat=0, blocked_connection_timeout=30))
        try:
            yield conn.channel()
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def declare_exchange(self, name, kind="topic"):
        with self.channel() as ch:
            ch.exchange_declare(name, kind, durable=True)

    def declare_queue(self, name, exchange=None, key="#", arguments=None):
        with self.channel() as ch:
            ch.queue_declare(name, durable=True, arguments=arguments)
            if exchange:
                ch.queue_bind(name, exchange, key)

    def count(self, queue):
        with self.channel() as ch:
            return ch.queue_declare(queue, passive=True).method.message_count

    def exists(self, queue):
        try:
            self.count(queue)
            return True
        except pika.exceptions.ChannelClosedByBroker:
            return False

    def get_all(self, queue, limit=1000000):
        """Takes every message now in queue: [(properties, body)]."""
        got = []
        with self.channel() as ch:
            while len(got) < limit:
                method, props, body = ch.basic_get(queue, auto_ack=True)
                if method is None:
                    break
                got.append((props, body))
        return got

    def publish(self, exchange, key, body, **props):
        with self.channel() as ch:
            ch.confirm_delivery()
            ch.basic_publish(exchange, key, body, pika.BasicProperties(delivery_mode=2, **props),
                             mandatory=True)

    def queue_arguments(self, queue):
        out = self.ctl("list_queues", "name", "arguments", "--formatter", "json")
        import json
        for q in json.loads(out):
            if q["name"] == queue:
                args = q["arguments"]
                # rabbitmqctl lists [name, type, value] triples
                return {a[0]: a[2] for a in args} if isinstance(args, list) else args
        return None


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="sidecar-e2e-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def broker(workdir):
    b = Broker(workdir)
    b.start()
    yield b
    b.destroy()


@pytest.fixture(autouse=True)
def broker_running(request):
    """Tests that stop the broker must leave it running: check after each test."""
    yield
    if "broker" in request.fixturenames:
        b = request.getfixturevalue("broker")
        if b.proc is None:
            b.start()


@pytest.fixture
def uid():
    return "t" + "".join(random.choices(string.ascii_lowercase + string.digits, k=8))


def sidecar_bin():
    return os.environ.get("SIDECAR_BIN", os.path.join(ROOT, "build", "asan", "amqp-sidecar"))


def run_cli(*args, input=None, timeout=60, env=None):
    """Runs the sidecar binary to completion (check, topology, transform, replay)."""
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    e.setdefault("LSAN_OPTIONS", LSAN_OPTIONS)
    if env:
        e.update(env)
    r = subprocess.run([sidecar_bin(), *args], input=input, capture_output=True, text=True,
                       timeout=timeout, env=e)
    assert_no_sanitizer_report(r.stderr)
    return r


def plain(log_text):
    """Log lines as a reader sees them: logfmt's escaped quotes unescaped."""
    return log_text.replace('\\"', '"')


def assert_no_sanitizer_report(text):
    for marker in SANITIZER_MARKERS:
        if marker in text:
            raise AssertionError("sanitizer report from the sidecar:\n" + text[-20000:])


class Sidecar:
    """A running amqp-sidecar process (stderr captured to a file)."""

    def __init__(self, path, admin_port, env=None, args=("run",)):
        self.config_path = path
        self.admin = f"http://127.0.0.1:{admin_port}"
        self.log_path = path + ".log"
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        e.setdefault("LSAN_OPTIONS", LSAN_OPTIONS)
        if env:
            e.update(env)
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sidecar_bin(), *args, "-c", path], stdout=self.log_file,
                                     stderr=self.log_file, env=e)
        self.returncode = None

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, timeout=10):
        return wait_for(lambda: re.search(pattern, self.log()), timeout, what=f"log /{pattern}/")

    def readyz(self):
        try:
            return requests.get(self.admin + "/readyz", timeout=2)
        except requests.RequestException:
            return None

    def wait_ready(self, timeout=20):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"sidecar exited with {self.proc.returncode}:\n{self.log()}")
            r = self.readyz()
            return r is not None and r.status_code == 200
        wait_for(ready, timeout, what="sidecar /readyz 200")
        return self

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
            raise AssertionError("sidecar did not stop in time:\n" + self.log()[-5000:])
        self.log_file.close()
        assert_no_sanitizer_report(self.log())
        return self.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.returncode = self.proc.wait()
        self.log_file.close()
        return self.returncode


def make_config(broker, name, inbound="", outbound="", admin_port=None, extra=""):
    """libconfig text for a sidecar named `name` on the test broker."""
    parts = [f'name = "{name}";',
             f'broker = {{ url = "{broker.url}"; heartbeat = 5; connect_timeout = 2; }};']
    if admin_port:
        parts.append(f'admin = {{ listen = "127.0.0.1:{admin_port}"; }};')
    if extra:
        parts.append(extra)
    if inbound:
        parts.append(f"inbound = ( {inbound} );")
    if outbound:
        parts.append(f"outbound = ( {outbound} );")
    return "\n".join(parts) + "\n"


@pytest.fixture
def config(broker):
    def build(name, inbound="", outbound="", admin_port=None, extra=""):
        return make_config(broker, name, inbound, outbound, admin_port, extra)
    return build


@pytest.fixture
def sidecar(broker, tmp_path):
    """sidecar(text, ready=True, env=None) starts one on a config; all are stopped after."""
    started = []

    def start(text=None, ready=True, env=None, name="sidecar", inbound="", outbound="", extra=""):
        admin_port = free_port()
        if text is None:
            text = make_config(broker, name, inbound, outbound, admin_port, extra)
        elif "admin" not in text:
            text += f'admin = {{ listen = "127.0.0.1:{admin_port}"; }};\n'
        else:
            admin_port = int(re.search(r'admin\s*=\s*\{\s*listen\s*=\s*"[^:]+:(\d+)"', text)[1])
        path = str(tmp_path / f"{name}-{len(started)}.conf")
        with open(path, "w") as f:
            f.write(text)
        s = Sidecar(path, admin_port, env=env)
        started.append(s)
        if ready:
            s.wait_ready()
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.stop()
        else:
            s.log_file.close()
            assert_no_sanitizer_report(s.log())


def sandboxed_example(examples, name, work):
    """A copy of the installed examples in which `name`'s absolute paths (the operator's
    spool directories and secret files) point into `work` and exist there."""
    shutil.copytree(examples, work)
    path = os.path.join(work, name)
    text = open(path).read()
    for p in sorted(set(re.findall(r'"(/(?:var|etc|srv|data)/[^"]*)"', text)), key=len,
                    reverse=True):
        local = str(work) + p
        text = text.replace(f'"{p}"', f'"{local}"')
        if re.search(r"(\.pass|\.key|\.hmac|\.token|secret|password)$", p):
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with open(local, "w") as f:
                f.write("example-secret\n")
            os.chmod(local, 0o600)
        elif not os.path.splitext(p)[1]:
            os.makedirs(local, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path
