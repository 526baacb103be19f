"""Helpers for the file inbound and outbound end-to-end tests.

FileIn sets up one sidecar with file routes (one drop directory each), an
exchange and a bound queue per route; files are dropped the way a careful
legacy system does (written under a dotfile name, then renamed in) or the way
a careless one does (written in place, slowly). expected_id() recomputes the
message id the sidecar must give a record: the first 32 hex digits of the
SHA-256 of the whole file, ":" and the 0-based record index.
"""
import contextlib
import csv
import hashlib
import io
import json
import os
import random
import resource
import signal
import subprocess
import time

import conftest
from conftest import free_port, wait_for


def file_prefix(content):
    return hashlib.sha256(content).hexdigest()[:32]


def expected_id(content, index):
    return f"{file_prefix(content)}:{index}"


def compact(obj):
    """JSON text as the sidecar writes it (jansson, compact, UTF-8, keys in order)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def listing(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


class Route:
    """One file inbound route: its directories, exchange and sink queue."""

    def __init__(self, base, uid, name, fmt, extra="", routing_key=None, bind=None,
                 queue_args=None):
        self.name = name
        self.dir = os.path.join(base, name, "drop")
        self.done = os.path.join(base, name, "done")
        self.failed = os.path.join(base, name, "failed")
        self.processing = os.path.join(self.dir, ".processing")
        os.makedirs(self.dir, exist_ok=True)
        self.exchange = f"{uid}.files"
        self.queue = f"{uid}.{name}.sink"
        self.routing_key = routing_key if routing_key is not None else f"file.{name}"
        self.bind = bind if bind is not None else f"file.{name}.#"
        self.dlq = f"{uid}.{name}.dlq"
        self.fmt = fmt
        self.extra = extra
        self.queue_args = queue_args

    def config(self):
        defaults = "".join(f"{k} = {v}; " for k, v in (("settle_ms", 300), ("scan_interval", 1))
                           if k not in self.extra)
        return (f'{{ name = "{self.name}"; kind = "file"; dir = "{self.dir}"; '
                f'format = "{self.fmt}"; exchange = "{self.exchange}"; '
                f'routing_key = "{self.routing_key}"; done_dir = "{self.done}"; '
                f'failed_dir = "{self.failed}"; {defaults}{self.extra} }}')

    def drop(self, name, content):
        """Writes the file under a hidden name, then renames it in (complete at once)."""
        tmp = os.path.join(self.dir, "." + name + ".part")
        with open(tmp, "wb") as f:
            f.write(content)
        os.rename(tmp, os.path.join(self.dir, name))

    def write_in_place(self, name, content):
        with open(os.path.join(self.dir, name), "wb") as f:
            f.write(content)

    def wait_done(self, name, timeout=20):
        wait_for(lambda: name in listing(self.done), timeout, what=f"{name} in done_dir")

    def wait_failed(self, name, timeout=20):
        wait_for(lambda: f"{name}.error" in listing(self.failed) and name in listing(self.failed),
                 timeout, what=f"{name} and {name}.error in failed_dir")


class FileIn:
    """A sidecar whose inbound routes are the given Routes."""

    def __init__(self, broker, sidecar, uid, routes, extra="", start=True):
        self.broker = broker
        self.uid = uid
        self.routes = routes
        broker.declare_exchange(f"{uid}.files", "topic")
        for r in routes:
            broker.declare_queue(r.queue, r.exchange, r.bind, arguments=r.queue_args)
        self.inbound = ", ".join(r.config() for r in routes)
        self.extra = extra
        self.sidecar_factory = sidecar
        self.sidecar = self.start() if start else None

    def start(self, ready=True):
        self.sidecar = self.sidecar_factory(name=self.uid, inbound=self.inbound, extra=self.extra,
                                            ready=ready)
        return self.sidecar

    def messages(self, route):
        return self.broker.get_all(route.queue)

    def dead(self, route):
        return self.broker.get_all(route.dlq)


# ---- CSV fixtures ------------------------------------------------------------------------

NASTY = [
    'plain', 'with, comma', 'with "quotes"', '""', 'line\nbreak', 'crlf\r\ninside',
    '  padded  ', 'ünïcødé €', 'tab\there', 'semi;colon', '', "'single'", 'x' * 300,
    'trailing comma,', '"starts with quote', 'ends with quote"', '0012.50', '-0.000',
]


def csv_rows(n, seed=7):
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append([str(i), rnd.choice(NASTY), f"{rnd.randint(0, 10**9)}.{rnd.randint(0, 99):02d}",
                     rnd.choice(NASTY), ""])
    return rows


def csv_bytes(header, rows, delimiter=",", line_end="\n", bom=False):
    out = io.StringIO(newline="")
    w = csv.writer(out, delimiter=delimiter, lineterminator=line_end, quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    w.writerows(rows)
    text = ("\ufeff" if bom else "") + out.getvalue()
    return text.encode()


def csv_expected(content, delimiter=","):
    """The JSON body per record, as the sidecar must publish it (via Python's csv module)."""
    text = content.decode()
    if text.startswith("\ufeff"):
        text = text[1:]
    rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if r]
    header, data = rows[0], rows[1:]
    return [compact(dict(zip(header, r))) for r in data]


# ---- a sidecar with a file-size limit ----------------------------------------------------

class LimitedSidecar(conftest.Sidecar):
    """A sidecar started with RLIMIT_FSIZE: writes past it fail with EFBIG, even as root."""

    def __init__(self, path, admin_port, fsize):
        self.config_path = path
        self.admin = f"http://127.0.0.1:{admin_port}"
        self.log_path = path + ".log"
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        e.setdefault("LSAN_OPTIONS", conftest.LSAN_OPTIONS)
        self.log_file = open(self.log_path, "ab")

        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        self.proc = subprocess.Popen([conftest.sidecar_bin(), "run", "-c", path],
                                     stdout=self.log_file, stderr=self.log_file, env=e,
                                     preexec_fn=limit)
        self.returncode = None


@contextlib.contextmanager
def limited_sidecar(broker, tmp_path, name, outbound, fsize):
    admin_port = free_port()
    text = conftest.make_config(broker, name, outbound=outbound, admin_port=admin_port)
    path = str(tmp_path / f"{name}-limited.conf")
    with open(path, "w") as f:
        f.write(text)
    s = LimitedSidecar(path, admin_port, fsize)
    try:
        s.wait_ready()
        yield s
    finally:
        if s.proc.poll() is None:
            s.stop()
        else:
            s.log_file.close()
            conftest.assert_no_sanitizer_report(s.log())


def header(props, name):
    return (props.headers or {}).get(name)


def wait_count(broker, queue, n, timeout=20):
    return wait_for(lambda: broker.count(queue) >= n, timeout, what=f"{n} message(s) in {queue}")


def sigkill(s):
    s.proc.send_signal(signal.SIGKILL)
    s.returncode = s.proc.wait(10)
    s.log_file.close()
    conftest.assert_no_sanitizer_report(s.log())


def settle(seconds):
    """Gives the sidecar time to (wrongly) act; used only to prove something did NOT happen."""
    time.sleep(seconds)
