"""Helpers for the http outbound and poll inbound end-to-end tests.

LegacyServer is a real HTTP/1.1 server (http.server in a thread) standing in
for the legacy REST system: every request is recorded (method, path, query,
headers, body, arrival time) and answered from a script — a queue of canned
responses, then a default, or a handler function for stateful APIs.
"""
import collections
import contextlib
import http.server
import json
import threading
import time
import urllib.parse

import pika


class Request:
    def __init__(self, method, path, headers, body):
        self.method = method
        parsed = urllib.parse.urlsplit(path)
        self.path = parsed.path
        self.query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        self.raw_path = path
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        self.at = time.monotonic()

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<{self.method} {self.raw_path} {self.body[:60]!r}>"


class Response:
    def __init__(self, status=200, body=b"", headers=None, delay=0.0):
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = dict(headers or {})
        self.delay = delay


def json_response(status, obj, headers=None, delay=0.0):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return Response(status, json.dumps(obj), h, delay)


class LegacyServer:
    """A scripted legacy HTTP API on 127.0.0.1:<port>. nodelay: answer without Nagle's
    delay (http.server writes the head and the body apart, so on a keep-alive connection the
    body waits for the client's delayed ACK, about 40 ms: 25 calls a second on one line)."""

    def __init__(self, port=0, nodelay=False):
        self.requests = []
        self.script = collections.deque()
        self.default = json_response(200, {"ok": True})
        self.handler = None  # fn(Request) -> Response, overrides script and default
        self.delay = 0.0  # seconds before every answer
        self.cond = threading.Condition()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = nodelay

            def log_message(self, *args):
                pass

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path, self.headers, body)
                resp = server._answer(req)
                with server.cond:
                    server.requests.append(req)
                    server.cond.notify_all()
                if resp.delay or server.delay:
                    time.sleep(resp.delay or server.delay)
                try:
                    self.send_response(resp.status)
                    for k, v in resp.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(resp.body)))
                    self.end_headers()
                    if resp.status != 304 and resp.status != 204:
                        self.wfile.write(resp.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _answer(self, req):
        with self.cond:
            if self.handler:
                return self.handler(req)
            if self.script:
                return self.script.popleft()
            return self.default

    def url(self, path="/api"):
        return f"http://127.0.0.1:{self.port}{path}"

    def push(self, *responses):
        with self.cond:
            self.script.extend(responses)

    def wait_requests(self, n, timeout=15):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"legacy server got {len(self.requests)} request(s), wanted {n}: "
                        f"{self.requests[-5:]}")
                self.cond.wait(left)
            return list(self.requests)

    def snapshot(self):
        with self.cond:
            return list(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def legacy_server(port=0, nodelay=False):
    s = LegacyServer(port, nodelay)
    try:
        yield s
    finally:
        s.close()


def peek_all(broker, queue):
    """Every message now in queue, [(properties, body)], left in the queue."""
    got = []
    with broker.channel() as ch:
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=False)
            if method is None:
                break
            got.append((props, body))
        # closing the channel without acking requeues them
    return got


def publish_many(broker, queue, messages):
    """Publishes [(body, props-dict)] to queue through the default exchange, confirmed."""
    with broker.channel() as ch:
        ch.confirm_delivery()
        for body, props in messages:
            ch.basic_publish("", queue, body,
                             pika.BasicProperties(delivery_mode=2, **props), mandatory=True)


def header_int(props, name):
    v = (props.headers or {}).get(name)
    return int(v) if v is not None else None
