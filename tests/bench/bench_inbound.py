"""Inbound HTTP benchmark: wrk (64 connections, 200-byte JSON) against the
sidecar's http route, against RabbitMQ's management HTTP publish API, beside
the raw rabbitmq-c pipelined-confirm publish rate, all on the same broker."""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pika
import requests

BODY = json.dumps({"order": "A-1", "customer": "c-42", "lines": [{"sku": "X", "qty": 1}],
                   "note": "x" * 120})[:200]
BODY = BODY + " " * (200 - len(BODY))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url, lua, seconds, connections=64):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", lua, url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = int(re.search(r"(\d+) requests in", out)[1])
    return {"rate": rate, "p50": lat.get("50"), "p99": lat.get("99"),
            "non2xx": int(bad[1]) if bad else 0, "total": total}


def lua_script(path, body, headers):
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write(f"wrk.body = {json.dumps(body)}\n")
        for k, v in headers.items():
            f.write(f'wrk.headers["{k}"] = "{v}"\n')
    return path


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--amqp-port", type=int, required=True)
    ap.add_argument("--rabbitmqctl", required=True)
    ap.add_argument("--sidecar", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "10")))
    a, _ = ap.parse_known_args()
    url = f"amqp://guest:guest@127.0.0.1:{a.amqp_port}/%2f"
    mgmt = int(os.environ.get("BENCH_MGMT_PORT", "0"))

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", a.amqp_port))
    ch = conn.channel()
    for q in ("bench.in", "bench.mgmt"):
        ch.queue_declare(q, durable=True)
        ch.queue_purge(q)
    ch.queue_bind("bench.in", "amq.direct", "bench.in")
    conn.close()

    def raw_publish(*extra):
        return json.loads(subprocess.run([a.raw, "publish", "--url", url, "--queue", "bench.raw.in",
                                          "--count", "50000", "--size", "200", *extra],
                                         capture_output=True, text=True, check=True).stdout)
    raw = raw_publish("--window", "512")
    # The fair ceiling for 64 HTTP clients: 64 in flight, and the message shape the
    # sidecar must publish (mandatory, ids, timestamp, app_id, a header).
    raw64 = raw_publish("--window", "64", "--sidecar-props")

    port, admin = free_port(), free_port()
    conf = os.path.join(a.workdir, "bench-inbound.conf")
    with open(conf, "w") as f:
        f.write(f'''name = "bench";
broker = {{ url = "{url}"; }};
admin = {{ listen = "127.0.0.1:{admin}"; }};
inbound = ( {{ name = "in"; kind = "http"; listen = "127.0.0.1:{port}"; path = "/in";
              exchange = "amq.direct"; routing_key = "bench.in"; }} );
''')
    log = open(conf + ".log", "w")
    proc = subprocess.Popen([a.sidecar, "run", "-c", conf], stderr=log)
    try:
        for _ in range(100):
            try:
                if requests.get(f"http://127.0.0.1:{admin}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        lua = lua_script(os.path.join(a.workdir, "in.lua"), BODY, {"Content-Type": "application/json"})
        ours = wrk(f"http://127.0.0.1:{port}/in", lua, a.seconds)
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)

    theirs = None
    if mgmt:
        payload = {"properties": {"delivery_mode": 2, "content_type": "application/json"},
                   "routing_key": "bench.mgmt", "payload": BODY, "payload_encoding": "string"}
        lua = lua_script(os.path.join(a.workdir, "mgmt.lua"), json.dumps(payload),
                         {"Content-Type": "application/json",
                          "Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="})
        theirs = wrk(f"http://127.0.0.1:{mgmt}/api/exchanges/%2f/amq.default/publish", lua, a.seconds)

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", a.amqp_port))
    in_queue = conn.channel().queue_declare("bench.in", passive=True).method.message_count
    conn.close()
    accepted = ours["total"] - ours["non2xx"]

    print(f"  {'raw rabbitmq-c pipelined publish (w=512)':<44} {raw['rate']:9.0f} msg/s")
    print(f"  {'raw, 64 in flight, the sidecar message shape':<44} {raw64['rate']:9.0f} msg/s")
    print(f"  {'sidecar http inbound (wrk -c64, 202 after confirm)':<44} {ours['rate']:9.0f} req/s"
          f"   p50 {ours['p50']}  p99 {ours['p99']}  peak RSS {rss:.1f} MB")
    if theirs:
        print(f"  {'RabbitMQ management HTTP publish API':<44} {theirs['rate']:9.0f} req/s"
              f"   p50 {theirs['p50']}  p99 {theirs['p99']}")
    print(f"  ratio: sidecar/raw = {ours['rate'] / raw['rate']:.2f}x, "
          f"sidecar/raw-same-shape-64 = {ours['rate'] / raw64['rate']:.2f}x"
          + (f", sidecar/management API = {ours['rate'] / theirs['rate']:.1f}x" if theirs else ""))
    print(f"  check: {accepted} requests answered 202, {in_queue} messages in the queue, "
          f"{ours['non2xx']} non-2xx")
    if in_queue < accepted:
        print("  ERROR: fewer messages than 202 answers")
        sys.exit(1)


if __name__ == "__main__":
    main()
