#!/usr/bin/python3
"""Every metric the shipped alert rules and Grafana dashboard use is one the sidecar exports.

Starts the sidecar (SIDECAR_BIN, default build/amqp-sidecar) on a throwaway config whose
broker is not there — /metrics lists every family's # TYPE line whether or not a route
or a connection moved it — scrapes /metrics, and compares the names (histograms with
their _bucket/_sum/_count series) with every amqp_sidecar_* name in the rules'
expressions and in the dashboard's queries. Prints what is unknown, exits 1 if any is.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "packaging", "monitoring", "amqp-sidecar.rules.yml")
DASHBOARD = os.path.join(ROOT, "packaging", "monitoring", "amqp-sidecar.dashboard.json")
NAME = re.compile(r"\bamqp_sidecar_[a-z0-9_]+\b")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exported(binary):
    """The series names /metrics can show, from a real scrape."""
    admin, dead, listen = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "names.conf")
        with open(conf, "w") as f:
            f.write(f'name = "names";\n'
                    f'broker = {{ url = "amqp://guest:guest@127.0.0.1:{dead}/%2f"; '
                    f'connect_timeout = 1; }};\nadmin = {{ listen = "127.0.0.1:{admin}"; }};\n'
                    f'inbound = ( {{ name = "in"; kind = "http"; listen = "127.0.0.1:{listen}"; '
                    f'path = "/in"; exchange = "x"; routing_key = "k"; }} );\n'
                    f'outbound = ( {{ name = "out"; kind = "http"; url = "http://127.0.0.1:{dead}/"; }} );\n')
        proc = subprocess.Popen([binary, "run", "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(tmp, "log"), "w"))
        try:
            text = None
            for _ in range(100):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=2) as r:
                        text = r.read().decode()
                    break
                except OSError:
                    time.sleep(0.1)
            if text is None:
                sys.exit(f"check-metric-names: {binary} did not answer /metrics:\n"
                         + open(os.path.join(tmp, "log")).read()[-2000:])
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    names, histograms = set(), set()
    for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M):
        if m[2] == "histogram":
            histograms.add(m[1])
            names |= {m[1] + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(m[1])
    return names, histograms


def used():
    """{name: [where it is used]} from the rules and the dashboard."""
    out = {}
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    for g in rules["groups"]:
        for r in g["rules"]:
            for n in NAME.findall(r["expr"]):
                out.setdefault(n, []).append(f"rules: {r.get('alert') or r.get('record')}")
    with open(DASHBOARD) as f:
        dash = json.load(f)

    def walk(node, where):
        if isinstance(node, dict):
            where = node.get("title", where)
            for k, v in node.items():
                if k in ("expr", "definition", "query") and isinstance(v, str):
                    for n in NAME.findall(v):
                        out.setdefault(n, []).append(f"dashboard: {where}")
                else:
                    walk(v, where)
        elif isinstance(node, list):
            for v in node:
                walk(v, where)
    walk(dash, "templating")
    return out


def main():
    binary = os.environ.get("SIDECAR_BIN", os.path.join(ROOT, "build", "amqp-sidecar"))
    have, histograms = exported(binary)
    want = used()
    unknown = {n: w for n, w in want.items() if n not in have}
    for n, w in sorted(unknown.items()):
        print(f"{n}: not exported by the sidecar, used in {', '.join(sorted(set(w)))}")
    unused = sorted(({n for n in have if not n.endswith(("_bucket", "_sum", "_count"))} |
                     {h for h in histograms if not any(n.startswith(h + "_") for n in want)})
                    - set(want))
    print(f"check-metric-names: {len(want)} names used, {len(unknown)} unknown; "
          f"exported but shown nowhere: {', '.join(unused) or 'none'}")
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(main())
