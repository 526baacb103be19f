"""benchlib — what the benchmark scripts (bench_*.py, run by tests/bench/run.sh)
share: the private broker (its AMQP port, its beam.smp pid and CPU time), the
sidecar under test (start, ready, CPU, peak RSS, stop), the local HTTP sink,
the C tools built by `make bench-tools` (raw_amqp, loadgen, sink), CPU and memory read from /proc,
and the Markdown tables every section prints.

CPU figures are utime+stime of one process (all its threads, user and kernel)
from /proc/PID/stat, read right before and right after the measured run; a
process's start-up is never inside a window unless a note says so.
"""
import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import time

import pika
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")

# A 200-byte JSON body: what the inbound benchmarks post and what raw_amqp publishes.
BODY = json.dumps({"order": "A-1", "customer": "c-42", "lines": [{"sku": "X", "qty": 1}],
                   "note": "x" * 120})[:200]
BODY = BODY + " " * (200 - len(BODY))


def bench_seconds():
    """Seconds per measured run (BENCH_SECONDS); the other sizes scale with it."""
    return float(os.environ.get("BENCH_SECONDS", "5"))


def args(doc):
    """The command line run.sh gives every bench_*.py."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--amqp-port", type=int, required=True)
    ap.add_argument("--rabbitmqctl", required=True, help="rabbitmqctl command for the node")
    ap.add_argument("--broker-pid", type=int, default=0, help="the node's beam.smp pid")
    ap.add_argument("--sidecar", required=True)
    ap.add_argument("--tools", required=True, help="directory of raw_amqp, loadgen, sink")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--mgmt-port", type=int, default=0)
    return ap


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def cpu_seconds(pid):
    """utime + stime of every thread of PID so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mb(pid):
    """VmHWM: the most resident memory PID has had."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def per_msg_us(seconds, count):
    return seconds * 1e6 / count if count else float("nan")


class Broker:
    """The private RabbitMQ node run.sh started."""

    def __init__(self, a):
        self.port = a.amqp_port
        self.url = f"amqp://guest:guest@127.0.0.1:{a.amqp_port}/%2f"
        self.ctl = shlex.split(a.rabbitmqctl)
        self.pid = a.broker_pid or self.find_pid()
        with open(f"/proc/{self.pid}/comm") as f:
            comm = f.read().strip()
        if comm != "beam.smp":
            raise RuntimeError(f"broker pid {self.pid} is {comm!r}, not beam.smp")

    def find_pid(self):
        out = subprocess.run(self.ctl + ["-q", "eval", "os:getpid()."], capture_output=True,
                             text=True, check=True).stdout
        return int(out.strip().strip('"'))

    def cpu(self):
        return cpu_seconds(self.pid)

    def ctl_run(self, *argv):
        return subprocess.run(self.ctl + list(argv), capture_output=True, text=True, check=True)

    def channel(self):
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.port))
        return conn, conn.channel()

    def declare(self, queue, bind=None):
        """A durable queue, purged; bind = (exchange, routing key)."""
        conn, ch = self.channel()
        try:
            ch.queue_declare(queue, durable=True)
            ch.queue_purge(queue)
            if bind:
                ch.queue_bind(queue, bind[0], bind[1])
        finally:
            conn.close()

    def depth(self, queue):
        conn, ch = self.channel()
        try:
            return ch.queue_declare(queue, passive=True).method.message_count
        finally:
            conn.close()

    def purge(self, queue):
        conn, ch = self.channel()
        try:
            ch.queue_purge(queue)
        finally:
            conn.close()

    def delete(self, *queues):
        for q in queues:
            conn, ch = self.channel()
            try:
                ch.queue_delete(q)
            except pika.exceptions.ChannelClosedByBroker:
                pass
            finally:
                if conn.is_open:
                    conn.close()


class Sidecar:
    """One amqp-sidecar process on a config file; ready when /readyz says 200."""

    def __init__(self, binary, conf, admin_port, timeout=30):
        self.conf = conf
        self.log = open(conf + ".log", "a")
        self.proc = subprocess.Popen([binary, "run", "-c", conf], stdout=self.log,
                                     stderr=self.log)
        self.pid = self.proc.pid

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"sidecar exited {self.proc.returncode}; see {conf}.log")
            try:
                return requests.get(f"http://127.0.0.1:{admin_port}/readyz",
                                    timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_for(ready, timeout, f"the sidecar ({conf}) to be ready")

    def cpu(self):
        return cpu_seconds(self.pid)

    def rss(self):
        return peak_rss_mb(self.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        self.log.close()


class Sink:
    """tests/bench/sink on a free port: answers every POST 200 at once and counts them."""

    def __init__(self, tools_dir, workdir):
        self.port = free_port()
        self.log = open(os.path.join(workdir, "sink.log"), "w")
        self.proc = subprocess.Popen([os.path.join(tools_dir, "sink"), str(self.port), "2"],
                                     stdout=self.log, stderr=self.log)
        wait_for(lambda: self.stats() is not None, 5, "the sink")

    def stats(self):
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/stats", timeout=2).json()
        except requests.RequestException:
            return None

    def reset(self):
        requests.post(f"http://127.0.0.1:{self.port}/reset", timeout=2)

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


class Tools:
    """The C tools of tests/bench/, as built by `make bench-tools`."""

    def __init__(self, directory, url):
        self.dir = directory
        self.url = url

    def run(self, tool, *argv, timeout=600):
        out = subprocess.run([os.path.join(self.dir, tool), *map(str, argv)],
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(map(str, argv))}: {out.stderr.strip()}")
        return json.loads(out.stdout)

    def raw(self, mode, *argv):
        return self.run("raw_amqp", mode, "--url", self.url, *argv)

    def raw_http_out(self, *argv):
        return self.run("raw_http_out", "--url", self.url, *argv)

    def loadgen(self, url, connections, seconds, body_file, headers=(), rate=None):
        """Closed loop, or open loop at `rate` requests/s when given."""
        hs = [x for h in headers for x in ("-H", h)]
        rs = ["--rate", f"{rate:.1f}"] if rate else []
        return self.run("loadgen", "--url", url, "-c", connections, "-d", seconds,
                        "--body-file", body_file, *hs, *rs, timeout=seconds + 60)


def tick_note(fewest):
    """What /proc's CPU clock resolution means for a per-message figure."""
    return (f"/proc counts CPU in 1/{TICK} s ticks: a per-message figure over the fewest "
            f"messages here ({fewest}) is good to ±{1e6 / TICK / fewest:.1f} µs.")


def fmt(v, digits=0):
    if v is None or v != v:  # None or NaN
        return "–"
    if digits == 0:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:.{digits}f}"


def table(title, headers, rows, notes=()):
    """Prints one Markdown section: a title, a table, notes under it."""
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    if notes:
        lines.append("")
        lines += [f"- {n}" for n in notes]
    print("\n".join(lines) + "\n", flush=True)


def target(what, cases, digits=2):
    """One row of a targets table: where a target holds and where it does not,
    by how much. cases: (label, value, limit, at_least) — the value must be
    at least the limit when at_least, at most it otherwise."""
    met, missed = [], []
    for label, value, limit, at_least in cases:
        if value is None or value != value:
            missed.append(f"{label} (no figure)")
            continue
        if (value >= limit) if at_least else (value <= limit):
            met.append(str(label))
            continue
        off = (limit - value) / limit if at_least else (value - limit) / limit
        missed.append(f"{label}: {value:.{digits}f}, {off * 100:.0f} % "
                      f"{'short' if at_least else 'over'}")
    return [what, ", ".join(met) or "–", "; ".join(missed) or "–"]


def targets_table(title, rows, notes=()):
    table(title, ["target", "met at", "missed at (figure, by how much)"], rows, notes)


def progress(text):
    """Progress goes to stderr: stdout is the Markdown report."""
    print(f"  .. {text}", file=sys.stderr, flush=True)
