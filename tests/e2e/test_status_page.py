"""The status page (GET / on the admin listener) and /status.json, end to end.

A sidecar with routes in different states — an inbound route that is ready,
an outbound route whose circuit is open, one paused by the legacy side's
Retry-After, one whose legacy side rejects with an error body carrying
markup — is rendered by Debian's headless Chromium:
the rendered text must tell each route's state and why, the markup must stay
text (no script element in the DOM), and a screenshot is kept under build/.
A second sidecar without a broker shows "broker down".
"""
import html
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import requests

from conftest import ROOT, free_port, make_config, wait_for
from http_poll_helpers import Response, json_response, legacy_server
from test_ops import Metrics, http_route

CHROMIUM = shutil.which("chromium")
EVIL = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'


def chromium(url, *args):
    """Runs headless Chromium on url; returns its stdout (for --dump-dom)."""
    profile = tempfile.mkdtemp(prefix="status-chromium-")
    try:
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", *args, url],
            capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def rendered_text(dom):
    """The page's visible text, roughly: tags dropped, entities decoded, spaces squeezed."""
    dom = re.sub(r"<style.*?</style>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def status(sc):
    r = requests.get(sc.admin + "/status.json", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    return r.json()


def answers(sc):
    try:
        return requests.get(sc.admin + "/healthz", timeout=2).ok
    except requests.ConnectionError:
        return False


def route_of(doc, name):
    [r] = [r for r in doc["routes"] if r["name"] == name]
    return r


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make deps)")
def test_status_page_rendered_by_chromium(broker, sidecar, uid):
    exchange = f"{uid}.events"
    broker.declare_exchange(exchange)
    broker.declare_queue(f"{uid}.sink", exchange, "#")
    port = free_port()
    with legacy_server() as api:
        def answer(req):
            if req.path == "/reject":
                return Response(422, EVIL, {"Content-Type": "text/plain"})
            if req.path == "/quota":
                return json_response(429, {"slow": "down"}, {"Retry-After": "600"})
            return json_response(503, {"busy": True})
        api.handler = answer
        outbound = ", ".join([
            f'{{ name = "billing"; kind = "http"; url = "{api.url("/busy")}"; '
            f'retry = {{ delays = [300]; }}; circuit = {{ failures = 1; cooldown = 600; }}; }}',
            f'{{ name = "rejects"; kind = "http"; url = "{api.url("/reject")}"; }}',
            f'{{ name = "quota"; kind = "http"; url = "{api.url("/quota")}"; '
            f'rate = {{ per_second = 5; }}; }}',
        ])
        admin_port = free_port()
        sc = sidecar(make_config(
            broker, uid, inbound=http_route("orders", port, exchange, "o"), outbound=outbound,
            extra=f'admin = {{ listen = "127.0.0.1:{admin_port}"; queue_interval = 1; }};'))
        wait_for(lambda: all(c["up"] for c in status(sc)["connections"]), 20,
                 what="every connection up")
        requests.post(f"http://127.0.0.1:{port}/orders", data=b'{"n":1}',
                      headers={"Content-Type": "application/json"}, timeout=10)
        broker.publish("", f"{uid}.billing", b'{"n":1}')
        broker.publish("", f"{uid}.rejects", b'{"n":2}', message_id="bad-1")
        broker.publish("", f"{uid}.quota", b'{"n":3}')
        wait_for(lambda: route_of(status(sc), "billing")["state"] == "circuit open" and
                 route_of(status(sc), "quota")["state"] == "paused" and
                 route_of(status(sc), "rejects")["total"]["dead_letters"] == 1 and
                 route_of(status(sc), "rejects")["queues"][-1]["messages"] == 1, 20,
                 what="billing's circuit open, rejects dead-lettered and its DLQ read")
        doc = status(sc)

        # /status.json: the data.
        assert doc["system"] == uid and doc["version"] and doc["uptime_seconds"] > 0
        assert doc["status"] == "not ready"
        assert {c["name"] for c in doc["connections"]} == \
            {"publisher", "billing", "rejects", "quota"}
        assert all(c["state"] == "up" and c["reconnects"] == 0 for c in doc["connections"])
        orders, billing, rejects = (route_of(doc, n) for n in ("orders", "billing", "rejects"))
        assert (orders["kind"], orders["direction"], orders["state"]) == ("http", "inbound", "ready")
        assert orders["total"]["in"] == orders["total"]["out"] == 1
        assert orders["last_minute"]["in"] == 1
        assert "next probe in" in billing["detail"]
        assert billing["total"]["retries"] == 1
        assert {q["role"]: q["messages"] for q in billing["queues"]} == \
            {"work": 0, "retry": 1, "dlq": 0}
        assert "circuit open" in billing["last_error"]["message"]
        assert rejects["state"] == "ready"
        quota = route_of(doc, "quota")
        assert quota["ready"] and "resumes in" in quota["detail"], quota  # a pause is no failure
        assert quota["in_flight"] == 1 and quota["total"]["retries"] == 0
        assert EVIL in rejects["last_error"]["message"]
        assert "bad-1" in rejects["last_error"]["message"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rejects["last_error"]["at"])

        # The raw page: self-contained, refreshing, every interpolated string escaped.
        page = requests.get(sc.admin + "/", timeout=5)
        assert page.status_code == 200
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        assert '<meta http-equiv="refresh"' in page.text
        assert "<script" not in page.text and "<img" not in page.text
        assert html.escape(EVIL, quote=True).replace("&#x27;", "&#39;") in page.text
        assert not re.search(r'(src|href)="(https?:)?//', page.text), "external asset"

        # Rendered by Chromium.
        dom = chromium(sc.admin + "/", "--dump-dom")
        assert "<script" not in dom.lower() and "<img" not in dom.lower(), "markup got through"
        text = rendered_text(dom)
        for want in (uid, doc["version"], "Broker connections", "publisher", "orders",
                     "billing", "rejects", "circuit open", "next probe in", "ready",
                     "quota", "paused", "resumes in",
                     "dlq: 1", "retry: 1", EVIL, "bad-1"):
            assert want in text, (want, text[:3000])
        assert "pwned" not in text.split(EVIL)[0]  # the title was not rewritten by a script
        os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
        shot = os.path.join(ROOT, "build", "status.png")
        if os.path.exists(shot):
            os.unlink(shot)
        chromium(sc.admin + "/", f"--screenshot={shot}", "--window-size=1500,900")
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_status_without_a_broker_says_broker_down(sidecar, uid):
    dead = free_port()  # nothing listens there
    port, admin_port = free_port(), free_port()
    text = (f'name = "{uid}";\nbroker = {{ url = "amqp://guest:guest@127.0.0.1:{dead}/%2f"; '
            f'connect_timeout = 1; }};\nadmin = {{ listen = "127.0.0.1:{admin_port}"; }};\n'
            f'inbound = ( {http_route("orders", port, "ex", "k")} );\n')
    sc = sidecar(text, ready=False)
    wait_for(lambda: answers(sc), 20, what="the admin listener up")
    doc = status(sc)
    assert doc["connections"][0]["state"] == "down"
    assert route_of(doc, "orders")["state"] == "broker down"
    page = requests.get(sc.admin + "/", timeout=5).text
    assert "broker down" in page
    if CHROMIUM:
        assert "broker down" in rendered_text(chromium(sc.admin + "/", "--dump-dom"))
