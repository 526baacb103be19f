"""The open-loop part of the inbound bench (bench_inbound.py runs it after the
closed-loop matrix): issue #12's "p99 at half the saturating rate ≤ 2× raw's
p99".

For each in-flight level N of OPEN_LEVELS, the rate is half the lower of the
two saturating rates just measured at N (raw's and the sidecar's closed-loop
msg/s). Raw rabbitmq-c (`raw_amqp publish --rate`, at most N awaiting
confirms) and the sidecar under `loadgen --rate` (N connections) are both run
open loop at that rate: publishes / requests due evenly spaced, each timed from
when it was due (no coordinated omission). The same loadgen is also run at the
same rate against tests/bench/sink, to show what the tool and this machine add
on their own. Every 2xx and every confirm must be in the queue (checked by the
caller's Matrix.check).
"""
from benchlib import BODY, Sidecar, Sink, fmt, progress, table

OPEN_LEVELS = (16, 64)
TARGET = 2.0  # issue #12: the sidecar's p99 at most twice raw's


def raw_run(m, n, rate):
    m.broker.purge(m.queue)
    r = m.tools.raw("publish", "--queue", m.queue, "--passive", "--exchange", m.exchange,
                    "--routing-key", m.key, "--seconds", m.seconds, "--size", len(BODY),
                    "--window", n, "--sidecar-props", "--rate", f"{rate:.1f}")
    m.check(f"raw open loop, {n} in flight", m.broker.depth(m.queue), r["count"])
    return r


def sidecar_run(m, url, n, rate):
    m.broker.purge(m.queue)
    r = m.tools.loadgen(url, n, m.seconds, m.body, ["Content-Type: application/json"], rate=rate)
    depth = m.broker.depth(m.queue)
    m.check(f"sidecar open loop, {n} connections", depth, r["ok"], slack=r["errors"])
    if r["ok"] == 0:
        m.failures.append(f"sidecar open loop, {n} connections: no 2xx answer "
                          f"({r['non2xx']} non-2xx, {r['errors']} connections lost)")
    r["depth"] = depth
    return r


def joined(runs, key):
    """One figure per run: 4663+4663, or 136/263 for the ms ones."""
    sep = "/" if key.endswith("_ms") else "+"
    return sep.join(f"{r[key]:.0f}" for r in runs)


def best(runs):
    """The sustained run with the lower p99, or None if none kept the rate."""
    kept = [r for r in runs if r["sustained"]]
    return min(kept, key=lambda r: r["p99_ms"]) if kept else None


def p50_p99(r):
    if r is None:
        return "not sustained (over 1 s behind)"
    return f"{fmt(r['p50_ms'], 2)} / {fmt(r['p99_ms'], 2)}"


def verdict(raw, ours):
    """The p99 ratio and the target beside it, saying by how much it is missed."""
    if raw is None or ours is None:
        return "–", f"≤ {TARGET:g}×: no figure (a side did not keep the rate)"
    ratio = ours["p99_ms"] / raw["p99_ms"] if raw["p99_ms"] else float("inf")
    if ratio <= TARGET:
        return fmt(ratio, 2), f"≤ {TARGET:g}×: met"
    return fmt(ratio, 2), f"≤ {TARGET:g}×: missed by {fmt(ratio / TARGET, 2)}×"


def run(m, closed, repeat, write_config):
    """closed: {N: (raw, sidecar)} closed-loop results of Matrix.level;
    write_config(a, url) -> (conf, admin port, route url), as bench_inbound's."""
    sink = Sink(m.a.tools, m.a.workdir)
    rows, checks = [], []
    try:
        for n in OPEN_LEVELS:
            if n not in closed:
                continue
            raw_closed, ours_closed = closed[n]
            rate = min(raw_closed["rate"], ours_closed["rate"]) / 2
            conf, admin, url = write_config(m.a, m.broker.url)
            sc = Sidecar(m.a.sidecar, conf, admin)
            raws, ours = [], []
            try:
                for i in range(repeat):
                    progress(f"inbound open loop, {n} in flight at {rate:.0f}/s, run "
                             f"{i + 1}/{repeat}: raw")
                    raws.append(raw_run(m, n, rate))
                    progress(f"inbound open loop, {n} in flight at {rate:.0f}/s, run "
                             f"{i + 1}/{repeat}: sidecar")
                    ours.append(sidecar_run(m, url, n, rate))
            finally:
                sc.stop()
            progress(f"inbound open loop, {n} connections at {rate:.0f}/s: loadgen → sink")
            sink.reset()
            alone = m.tools.loadgen(f"http://127.0.0.1:{sink.port}/in", n, m.seconds, m.body,
                                    ["Content-Type: application/json"], rate=rate)
            seen = sink.stats()["count"]
            if not alone["scheduled"] == alone["ok"] == seen:
                m.failures.append(f"loadgen → sink at {rate:.0f}/s: {alone['scheduled']} "
                                  f"scheduled, {alone['ok']} × 2xx, {seen} seen by the sink")
            raw, our = best(raws), best(ours)
            ratio, target = verdict(raw, our)
            rows.append([n, fmt(rate), p50_p99(raw), p50_p99(our), ratio, target,
                         p50_p99(alone if alone["sustained"] else None),
                         f"{fmt(raw['rate'] if raw else None)} / "
                         f"{fmt(our['ok'] / our['seconds'] if our else None)}"])
            checks.append(f"{n}: sidecar {joined(ours, 'ok')} × 2xx, {joined(ours, 'depth')} "
                          f"queued, {sum(r['non2xx'] for r in ours)} non-2xx, "
                          f"{sum(r['errors'] for r in ours)} lost, at most "
                          f"{joined(ours, 'max_backlog_ms')} ms behind schedule (raw "
                          f"{joined(raws, 'max_backlog_ms')} ms); loadgen → sink: "
                          f"{alone['ok']} of {alone['scheduled']} answered")
    finally:
        sink.stop()
    if not rows:
        return
    s = f"{m.seconds:g}"
    table(f"Inbound open loop: p99 at half the saturating rate ({s} s runs, better of {repeat})",
          ["in flight", "rate msg/s", "raw p50 / p99 ms", "sidecar p50 / p99 ms",
           "p99 ratio sidecar / raw", "target", "loadgen → sink p50 / p99 ms",
           "achieved msg/s raw / sidecar"], rows, [
        "rate: half the lower of raw's msg/s and the sidecar's req/s at that in-flight level in "
        "the closed-loop table above (same run, same broker). Both sides are driven open loop "
        "at that rate: work is *scheduled* evenly spaced (not Poisson), whatever the answers "
        "do, and each latency runs from the scheduled time, so a stall that holds work back "
        "is counted, not hidden (no coordinated omission, as wrk2 does it).",
        "raw: `raw_amqp publish --rate --sidecar-props --window N` to the route's exchange and "
        "key: each publish goes out when due if fewer than N await their confirm; p50/p99 from "
        "its scheduled time to its confirm (any wait for a window slot included).",
        "sidecar: the http route (`202` only after the confirm) under `loadgen --rate` with N "
        "keep-alive connections: each request is sent on a free connection at or after its "
        "scheduled time; p50/p99 from its scheduled time to its answer read (any wait for a "
        "free connection included).",
        "not sustained: more than 1 s worth of scheduled work was still unsent; the run then "
        "stops and its latencies describe an overload, not the rate, so none is shown.",
        "loadgen → sink: the same loadgen, rate and connections against `tests/bench/sink` "
        "(answers 200 at once): what the tool and this shared machine add on their own "
        "(timer wake-ups, being scheduled out), a floor under both columns.",
        f"Each row: raw, sidecar, raw, sidecar, {s} s each on one sidecar process started for "
        "the row; each side shows its run with the lower p99 (of those that kept the rate). "
        "achieved: messages confirmed (raw) / 2xx answers (sidecar) per second, from the "
        "first scheduled time to the last answer. The queue is purged before every run.",
        "checked, per row (every run): " + "; ".join(checks) + ".",
    ])

