"""File inbound: a large CSV dropped into a file route's directory, timed from
the rename until it lands in done_dir (both passes: check + hash, then publish
with confirms), beside raw rabbitmq-c publishing records of the same size to
the route's exchange and key (512 in flight, bare and with the sidecar's
message shape), on one private broker, plus the sidecar's peak RSS (VmHWM) —
memory must not grow with the file.

The queue is capped by a policy (max-length CAP, drop-head) and filled to the
cap before each run, so the broker does the same work per message in every
run whatever the count (each publish drops the oldest message): a backlog of
a million messages slows a classic queue down and would measure the queue,
not the sidecar. BENCH_FILE_RECORDS sets the size (default 40 000 × BENCH_SECONDS;
1000000 is ≈100 MB). Exits 1 unless the log reports every record confirmed.
"""
import csv
import io
import json
import os
import re
import signal
import sys
import tempfile
import time

from benchlib import (Broker, Sidecar, Tools, args, bench_seconds, fmt, free_port, per_msg_us,
                      progress, table, tick_note)

HEADER = "id,customer,amount,currency,reference,note"
QUEUE, EXCHANGE, KEY = "bench.file", "amq.direct", "bench.file"
CAP = 10000


def row(i):
    return (f'{i:07d},"Customer {i % 99991:05d}, Ltd",{i * 7 % 100000:05d}.{i % 100:02d},EUR,'
            f'INV-{i:09d},"paid ""in full"" {"x" * 20}"')


def record_size():
    """Bytes of one published record (the JSON object), for the raw comparison."""
    names = HEADER.split(",")
    values = next(csv.reader(io.StringIO(row(1234567))))
    return len(json.dumps(dict(zip(names, values)), separators=(",", ":")))


def write_csv(path, n):
    with open(path, "w") as f:
        f.write(HEADER + "\n")
        for start in range(0, n, 10000):
            f.write("\n".join(row(i) for i in range(start, min(n, start + 10000))) + "\n")


def main():
    a = args(__doc__).parse_args()
    records = int(os.environ.get("BENCH_FILE_RECORDS", str(int(40000 * bench_seconds()))))
    broker = Broker(a)
    tools = Tools(a.tools, broker.url)
    base = tempfile.mkdtemp(prefix="bench-file-", dir=a.workdir)
    drop, done, staging = (os.path.join(base, d) for d in ("drop", "done", "staging"))
    for d in (drop, done, staging):
        os.makedirs(d, exist_ok=True)

    size = record_size()
    csv_path = os.path.join(staging, "bench.csv")
    progress(f"file: writing a {records}-record CSV")
    write_csv(csv_path, records)
    mb = os.path.getsize(csv_path) / 1e6

    broker.ctl_run("set_policy", "--apply-to", "queues", "bench-file", r"^bench\.file",
                   json.dumps({"max-length": CAP, "overflow": "drop-head"}))
    broker.declare(QUEUE, bind=(EXCHANGE, KEY))

    def fill_to_cap():
        broker.purge(QUEUE)
        tools.raw("publish", "--queue", QUEUE, "--passive", "--count", CAP, "--size", size,
                  "--window", 512)

    def raw_publish(*extra):
        fill_to_cap()
        before = broker.cpu()
        r = tools.raw("publish", "--queue", QUEUE, "--passive", "--exchange", EXCHANGE,
                      "--routing-key", KEY, "--seconds", bench_seconds(), "--size", size,
                      "--window", 512, *extra)
        r["broker_us"] = per_msg_us(broker.cpu() - before, r["count"])
        r["client_us"] = per_msg_us(r["cpu_s"], r["count"])
        return r
    progress("file: raw publish, bare")
    raw = raw_publish()
    progress("file: raw publish, the sidecar's message shape")
    raw_shaped = raw_publish("--sidecar-props")
    fill_to_cap()

    admin = free_port()
    conf = os.path.join(base, "bench.conf")
    with open(conf, "w") as f:
        f.write(f'name = "bench";\n'
                f'broker = {{ url = "{broker.url}"; }};\n'
                f'admin = {{ listen = "127.0.0.1:{admin}"; }};\n'
                f'inbound = ( {{ name = "csv"; kind = "file"; dir = "{drop}"; format = "csv"; '
                f'exchange = "{EXCHANGE}"; routing_key = "{KEY}"; done_dir = "{done}"; '
                f'settle_ms = 200; }} );\n')
    progress("file: the sidecar's file route")
    sc = Sidecar(a.sidecar, conf, admin)
    try:
        rss_idle = sc.rss()
        cpu_before, broker_before = sc.cpu(), broker.cpu()
        started = time.monotonic()
        os.rename(csv_path, os.path.join(drop, "bench.csv"))
        while not os.path.exists(os.path.join(done, "bench.csv")):
            if sc.proc.poll() is not None or time.monotonic() - started > 600:
                sys.exit(f"  the file was not filed in done_dir; see {conf}.log")
            time.sleep(0.02)
        seconds = time.monotonic() - started
        rss = sc.rss()
        cpu, broker_cpu = sc.cpu() - cpu_before, broker.cpu() - broker_before
    finally:
        if sc.proc.poll() is None:
            sc.proc.send_signal(signal.SIGTERM)
        sc.stop()
    broker.delete(QUEUE)
    broker.ctl_run("clear_policy", "bench-file")

    text = open(conf + ".log", errors="replace").read()
    confirmed = re.search(r"(\d+) record\(s\) confirmed in", text)
    confirmed = int(confirmed[1]) if confirmed else None
    rate = records / seconds
    rows = [
        ["raw rabbitmq-c, 512 in flight, bare", fmt(raw["count"]), fmt(raw["rate"]),
         fmt(rate / raw["rate"], 2), fmt(raw["client_us"], 1), fmt(raw["broker_us"], 1), "–"],
        ["raw rabbitmq-c, 512 in flight, the sidecar's message shape", fmt(raw_shaped["count"]),
         fmt(raw_shaped["rate"]), fmt(rate / raw_shaped["rate"], 2),
         fmt(raw_shaped["client_us"], 1), fmt(raw_shaped["broker_us"], 1), "–"],
        ["sidecar file route (check pass + publish)", fmt(records), fmt(rate), "–",
         fmt(per_msg_us(cpu, records), 1), fmt(per_msg_us(broker_cpu, records), 1),
         f"{rss:.1f} (idle {rss_idle:.1f})"],
    ]
    table(f"File inbound: a {records}-record CSV ({mb:.1f} MB, {size}-byte JSON records)",
          ["publisher", "messages", "msg/s", "sidecar ÷ row", "client CPU µs/msg",
           "broker CPU µs/msg", "peak RSS MB"], rows,
          [f"sidecar: from the rename into the route's dir until the file is in done_dir: "
           f"{seconds:.1f} s; the log reports {confirmed if confirmed is not None else '?'} record(s) "
           "confirmed. Raw: `raw_amqp publish` to the route's exchange and key for "
           f"{bench_seconds():g} s, records of the same size.",
           "CPU µs/msg: utime+stime (every thread, user and kernel) from /proc/PID/stat over "
           "the run (raw client: its getrusage, connection setup included), per message; "
           f"broker: all of beam.smp. The queue is capped at {CAP} by policy (drop-head) and "
           "filled to the cap before each run: every publish measured drops the oldest message. "
           + tick_note(min(records, raw["count"], raw_shaped["count"]))])
    if confirmed != records:
        print(f"**ERROR**: {records} records in the file, the log reports {confirmed} "
              f"confirmed; see {conf}.log\n", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
