"""Real SOAP peers for tests/e2e/test_soap.py.

LegacySoapService  a spyne service (SOAP 1.1 or 1.2) the outbound route calls: UpdateCustomer
                   answers, or raises a Client fault (id "bad") or a Server fault (id "flaky");
                   every request it got is recorded (headers and body).
Recorder           a plain HTTP server answering scripted responses (status, headers, body),
                   for what spyne cannot be made to do (404 without a fault, non-SOAP 200...).
Replier            an AMQP consumer (pika) that answers rpc requests on their reply_to with
                   the same correlation_id — the service behind a `mode = "rpc"` soap route.
"""
import contextlib
import io
import logging
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pika
from spyne import Application, ServiceBase, Unicode, rpc
from spyne.model.fault import Fault
from spyne.protocol.soap import Soap11, Soap12
from spyne.server.wsgi import WsgiApplication

LEGACY_NS = "urn:example:legacy"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"

logging.getLogger("spyne").setLevel(logging.CRITICAL)  # faults are expected, not news


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietWSGIHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class CustomerService(ServiceBase):
    @rpc(Unicode, Unicode, _returns=Unicode)
    def UpdateCustomer(ctx, id, name):  # noqa: N802 (a SOAP operation name)
        if id == "bad":
            raise Fault(faultcode="Client", faultstring=f"unknown customer {id}")
        if id == "flaky":
            raise Fault(faultcode="Server", faultstring="database down, try later")
        return f"updated {id} ({name})"


class LegacySoapService:
    """spyne behind wsgiref (threads), on a free loopback port; records every request."""

    def __init__(self, version="1.1"):
        proto = Soap12 if version == "1.2" else Soap11
        app = Application([CustomerService], tns=LEGACY_NS, in_protocol=proto(validator="lxml"),
                          out_protocol=proto())
        self.wsgi = WsgiApplication(app)
        self.requests = []  # (headers dict, body bytes)
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self._record, server_class=_ThreadingWSGIServer,
                                  handler_class=_QuietWSGIHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _record(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        with self.lock:
            self.requests.append((headers, body))
        environ["wsgi.input"] = io.BytesIO(body)
        return self.wsgi(environ, start_response)

    def calls(self, needle):
        """How many requests held `needle` (bytes) in their body."""
        with self.lock:
            return sum(1 for _, body in self.requests if needle in body)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Recorder:
    """HTTP server that answers POSTs from a script: respond(headers, body) -> (status,
    headers, body). Records (headers, body) of every request."""

    def __init__(self, respond):
        outer = self
        self.respond = respond
        self.requests = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with outer.lock:
                    outer.requests.append((headers, body))
                status, extra, out = outer.respond(headers, body)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST  # noqa: N815 (for ?wsdl-style probes and XXE fetches)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return len(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Replier:
    """Consumes `queue` and answers each request on its reply_to with the correlation_id.
    answer(properties, body) -> (body bytes, headers dict or None, content_type), or None to
    leave the request unanswered."""

    def __init__(self, broker, queue, answer):
        self.broker, self.queue, self.answer = broker, queue, answer
        self.seen = []
        self.ready = threading.Event()
        self.conn = self.channel = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise AssertionError("replier did not start")

    def _run(self):
        self.conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.broker.port, heartbeat=0))
        ch = self.channel = self.conn.channel()

        def on_message(channel, method, props, body):
            self.seen.append((props, body))
            answer = self.answer(props, body)
            if answer is None:  # let this one time out
                channel.basic_ack(method.delivery_tag)
                return
            out, headers, content_type = answer
            channel.basic_publish("", props.reply_to, out, pika.BasicProperties(
                correlation_id=props.correlation_id, content_type=content_type,
                headers=headers))
            channel.basic_ack(method.delivery_tag)

        ch.basic_consume(self.queue, on_message)
        self.ready.set()
        with contextlib.suppress(Exception):
            ch.start_consuming()
        with contextlib.suppress(Exception):
            self.conn.close()

    def close(self):
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.add_callback_threadsafe(self.channel.stop_consuming)
        self.thread.join(5)


def envelope(version, body_xml, header_xml=""):
    """A SOAP envelope around body_xml (for hand-made requests)."""
    ns = SOAP12_NS if version == "1.2" else SOAP11_NS
    header = f"<s:Header>{header_xml}</s:Header>" if header_xml else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<s:Envelope xmlns:s="{ns}">{header}<s:Body>{body_xml}</s:Body></s:Envelope>')
