"""End-to-end tests of the `soap` kinds against a real RabbitMQ and real SOAP peers.

Inbound: a zeep client loads the sidecar's WSDL (configs/crm.wsdl served at ?wsdl) and calls
the one-way CustomerChanged and the request-response GetCustomer (answered by a pika replier)
over SOAP 1.1 and 1.2; hostile and malformed requests must get the right Fault and status,
publish nothing, and leave the sidecar answering. Outbound: the sidecar calls a spyne service
(1.1 and 1.2) and a scripted HTTP server; faults, statuses and replies decide ack / retry /
dead letter.
"""
import http.client
import json
import os
import socket
import threading
import time
import xml.etree.ElementTree as ET
from decimal import Decimal
from types import SimpleNamespace

import pytest
import requests
import zeep
import zeep.exceptions
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from conftest import ROOT, free_port, run_cli, wait_for
from soap_helpers import (LEGACY_NS, SOAP11_NS, SOAP12_NS, WSSE_NS, LegacySoapService, Recorder,
                          Replier, envelope)

WSDL = os.path.join(ROOT, "configs", "crm.wsdl")
CRM_NS = "urn:example:crm"
CT11 = "text/xml; charset=utf-8"
CT12 = "application/soap+xml; charset=utf-8"
FAST_RETRY = "retry = { delays = [0.2, 0.4]; }; circuit = { failures = 0; };"


# ---- helpers -----------------------------------------------------------------------------

def fault_of(resp):
    """(code, reason, version) of the SOAP Fault in an HTTP response."""
    root = ET.fromstring(resp.content)
    ns = root.tag[1:].split("}")[0]
    fault = root.find(f"{{{ns}}}Body/{{{ns}}}Fault")
    assert fault is not None, resp.text
    if ns == SOAP11_NS:
        return fault.findtext("faultcode"), fault.findtext("faultstring"), "1.1"
    return (fault.findtext(f"{{{ns}}}Code/{{{ns}}}Value"),
            fault.findtext(f"{{{ns}}}Reason/{{{ns}}}Text"), "1.2")


def assert_client_fault(resp, status, version="1.1", reason_has=""):
    assert resp.status_code == status, (resp.status_code, resp.text)
    code, reason, got_version = fault_of(resp)
    assert got_version == version
    assert code.endswith(":Client" if version == "1.1" else ":Sender"), code
    assert reason_has in reason, reason
    want_ct = "text/xml" if version == "1.1" else "application/soap+xml"
    assert resp.headers["Content-Type"].startswith(want_ct)
    return reason


def changed_xml(id_="7", name="Ada"):
    return (f'<c:CustomerChanged xmlns:c="{CRM_NS}"><c:id>{id_}</c:id><c:name>{name}</c:name>'
            f'</c:CustomerChanged>')


def post(url, body, version="1.1", action="urn:example:crm/CustomerChanged", **headers):
    h = {"Content-Type": CT11 if version == "1.1" else f'{CT12}; action="{action}"'}
    if version == "1.1":
        h["SOAPAction"] = f'"{action}"'
    h.update(headers)
    data = body.encode() if isinstance(body, str) else body
    return requests.post(url, data=data, headers=h, timeout=30)


def zeep_client(url, wsse=None):
    return zeep.Client(url + "?wsdl", wsse=wsse, transport=Transport(timeout=15,
                                                                     operation_timeout=15))


def port_of(client, version):
    return client.bind("CustomerService", "CustomerPort12" if version == "1.2" else
                       "CustomerPort11")


def secret_file(tmp_path, name, value):
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def collect(broker, queue, n, timeout=10, settle=0.3):
    """Takes messages from queue until n arrived, then waits `settle` s for extra ones."""
    got = []
    wait_for(lambda: got.extend(broker.get_all(queue)) or len(got) >= n, timeout,
             what=f"{n} message(s) in {queue}")
    time.sleep(settle)
    got.extend(broker.get_all(queue))
    return got


def header(props, name):
    value = (props.headers or {}).get(name)
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture
def soap_in(broker, sidecar, uid):
    """soap_in(keys="", bind="#") starts a sidecar with one soap inbound route "ws" publishing
    to a fresh exchange, and a queue bound with `bind`; wsdl=False leaves configs/crm.wsdl out."""
    def start(keys="", bind="#", routing_key="soap.{operation}", wsdl=True):
        exchange, queue = f"{uid}.ex", f"{uid}.q"
        broker.declare_exchange(exchange)
        broker.declare_queue(queue, exchange, bind)
        port = free_port()
        url = f"http://127.0.0.1:{port}/ws"
        wsdl_keys = f'wsdl = "{WSDL}"; wsdl_address = "{url}";' if wsdl else ""
        route = (f'{{ name = "ws"; kind = "soap"; listen = "127.0.0.1:{port}"; path = "/ws"; '
                 f'exchange = "{exchange}"; routing_key = "{routing_key}"; {wsdl_keys} {keys} }}')
        proc = sidecar(name=uid, inbound=route)
        return SimpleNamespace(url=url, port=port, queue=queue, exchange=exchange,
                               dlq=f"{uid}.ws.dlq", sidecar=proc)
    return start


@pytest.fixture
def peers():
    """Collects servers and repliers to close after the test."""
    started = []
    yield started
    for p in reversed(started):
        p.close()


# ---- inbound: zeep through the WSDL ------------------------------------------------------

def test_soap_in_wsdl_and_zeep_one_way_xml_both_versions(broker, soap_in):
    svc = soap_in(bind="soap.CustomerChanged")

    # The WSDL is served with its addresses pointing at the sidecar.
    r = requests.get(svc.url + "?wsdl", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    locations = [e.get("location") for e in root.iter() if e.tag.endswith("}address")]
    assert locations == [svc.url, svc.url]
    assert requests.get(svc.url + "?WSDL", timeout=10).content == r.content

    client = zeep_client(svc.url)
    assert port_of(client, "1.1").CustomerChanged(id="7", name="Ada Lovelace") is None
    assert port_of(client, "1.2").CustomerChanged(id="8", name="Grace", email="g@x.org") is None

    msgs = collect(broker, svc.queue, 2)
    assert len(msgs) == 2
    by_version = {header(p, "x-soap-version"): (p, b) for p, b in msgs}
    for version, want_id in (("1.1", "7"), ("1.2", "8")):
        props, body = by_version[version]
        assert props.content_type == "application/xml"
        assert header(props, "x-soap-action") == "urn:example:crm/CustomerChanged"
        assert header(props, "x-soap-operation") == "CustomerChanged"
        assert header(props, "x-soap-namespace") == CRM_NS
        assert props.delivery_mode == 2 and props.message_id and props.correlation_id
        element = ET.fromstring(body)  # standalone: declares the namespace it uses
        assert element.tag == f"{{{CRM_NS}}}CustomerChanged"
        assert element.findtext(f"{{{CRM_NS}}}id") == want_id
    assert ET.fromstring(by_version["1.2"][1]).findtext(f"{{{CRM_NS}}}email") == "g@x.org"


def test_soap_in_zeep_one_way_json_and_transform(broker, soap_in, tmp_path):
    jq = tmp_path / "in.jq"  # keeps the converted Body and adds a flat view of it
    jq.write_text('{soap: ., customer: (to_entries[0].value | with_entries('
                  'select(.key | startswith("@") | not) | .key |= sub("^.*:"; "")))}\n')
    svc = soap_in(f'format = "json"; transform = "{jq}";')
    assert port_of(zeep_client(svc.url), "1.1").CustomerChanged(id="7", name="Ada") is None
    msgs = collect(broker, svc.queue, 1)
    assert len(msgs) == 1
    props, body = msgs[0]
    assert props.content_type == "application/json"
    doc = json.loads(body)
    assert doc["customer"] == {"id": "7", "name": "Ada"}
    ((name, value),) = doc["soap"].items()
    prefix = name.split(":")[0]
    assert name == f"{prefix}:CustomerChanged"
    assert value == {f"@xmlns:{prefix}": CRM_NS, f"{prefix}:id": "7", f"{prefix}:name": "Ada"}


def test_soap_in_rpc_zeep_both_operations_one_route(broker, soap_in, peers, uid):
    """One rpc route serves the WSDL's port: GetCustomer waits for the replier's answer (XML
    or JSON), CustomerChanged is one-way by the WSDL and answered 202 once confirmed."""
    svc = soap_in('mode = "rpc"; timeout = 5.0;', bind="soap.GetCustomer")
    events = f"{uid}.events"
    broker.declare_queue(events, svc.exchange, "soap.CustomerChanged")

    def answer(props, body):
        want = ET.fromstring(body).findtext(f"{{{CRM_NS}}}id")
        if want == "json":
            return (json.dumps({"GetCustomerResponse": {"@xmlns": CRM_NS, "id": want,
                                                        "name": "Grace", "balance": 99.95}})
                    .encode(), None, "application/json")
        return (f'<r:GetCustomerResponse xmlns:r="{CRM_NS}"><r:id>{want}</r:id>'
                f'<r:name>Ada</r:name><r:balance>12.50</r:balance></r:GetCustomerResponse>'
                .encode(), None, "application/xml")
    replier = Replier(broker, svc.queue, answer)
    peers.append(replier)

    client = zeep_client(svc.url)
    got = port_of(client, "1.1").GetCustomer(id="7")
    assert (got.id, got.name, got.balance) == ("7", "Ada", Decimal("12.50"))
    got = port_of(client, "1.2").GetCustomer(id="json")
    assert (got.id, got.name, got.balance) == ("json", "Grace", Decimal("99.95"))

    started = time.monotonic()
    assert port_of(client, "1.2").CustomerChanged(id="5", name="Eve") is None
    assert time.monotonic() - started < 2  # not held for the rpc timeout
    one_way = collect(broker, events, 1)
    assert len(one_way) == 1 and one_way[0][0].reply_to is None
    assert ET.fromstring(one_way[0][1]).findtext(f"{{{CRM_NS}}}id") == "5"

    assert len(replier.seen) == 2
    props, body = replier.seen[0]
    assert props.reply_to.startswith("amq.rabbitmq.reply-to")
    assert header(props, "x-soap-operation") == "GetCustomer"
    assert header(props, "x-soap-action") == "urn:example:crm/GetCustomer"

    # The raw answer: 200, an envelope of the request's version, correlation id echoed.
    r = post(svc.url, envelope("1.2", f'<c:GetCustomer xmlns:c="{CRM_NS}"><c:id>9</c:id>'
                                      '</c:GetCustomer>'),
             "1.2", action="urn:example:crm/GetCustomer", **{"X-Correlation-ID": "corr-9"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/soap+xml")
    assert r.headers["X-Correlation-ID"] == "corr-9"
    body = ET.fromstring(r.content).find(f"{{{SOAP12_NS}}}Body")
    assert body[0].tag == f"{{{CRM_NS}}}GetCustomerResponse"
    assert body[0].findtext(f"{{{CRM_NS}}}id") == "9"


def test_soap_in_rpc_faults_and_timeout(broker, soap_in, peers):
    svc = soap_in('mode = "rpc"; timeout = 1.0;', bind="soap.GetCustomer")

    def answer(props, body):
        want = ET.fromstring(body).findtext(f"{{{CRM_NS}}}id")
        if want == "slow":
            return None
        if want in ("junk", "empty"):
            return (b"not <xml" if want == "junk" else b""), None, "application/xml"
        kind = {"bad": "client", "down": "server"}[want]
        return f"customer {want}: {kind} trouble".encode(), {"x-soap-fault": kind}, "text/plain"
    peers.append(Replier(broker, svc.queue, answer))
    client = zeep_client(svc.url)

    with pytest.raises(zeep.exceptions.Fault) as e:
        port_of(client, "1.1").GetCustomer(id="bad")
    assert e.value.message == "customer bad: client trouble" and e.value.code.endswith("Client")

    get = envelope("1.1", f'<c:GetCustomer xmlns:c="{CRM_NS}"><c:id>%s</c:id></c:GetCustomer>')
    r = post(svc.url, (get % "bad").replace(SOAP11_NS, SOAP12_NS), "1.2",
             action="urn:example:crm/GetCustomer")
    assert_client_fault(r, 400, "1.2", "customer bad: client trouble")
    r = post(svc.url, get % "down", "1.1", action="urn:example:crm/GetCustomer")
    assert r.status_code == 500
    assert fault_of(r)[:2] == ("soap:Server", "customer down: server trouble")

    r = post(svc.url, get % "junk", "1.1", action="urn:example:crm/GetCustomer")
    assert r.status_code == 500
    assert fault_of(r)[:2] == ("soap:Server", "the service sent an unusable reply")
    assert "rpc reply cannot be answered as SOAP" in svc.sidecar.log()
    r = post(svc.url, get % "empty", "1.1", action="urn:example:crm/GetCustomer")
    assert r.status_code == 200
    body = ET.fromstring(r.content).find(f"{{{SOAP11_NS}}}Body")
    assert body is not None and len(body) == 0

    started = time.monotonic()
    r = post(svc.url, (get % "slow").replace(SOAP11_NS, SOAP12_NS), "1.2",
             action="urn:example:crm/GetCustomer")
    assert 0.9 < time.monotonic() - started < 5
    assert r.status_code == 500
    code, reason, _ = fault_of(r)
    assert code == "soap:Receiver" and "no reply" in reason


# ---- inbound: hostile and malformed requests ----------------------------------------------

XXE_FILE = ('<?xml version="1.0"?><!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            + envelope("1.1", f'<c:CustomerChanged xmlns:c="{CRM_NS}"><c:id>&xxe;</c:id>'
                              '</c:CustomerChanged>').split("?>", 1)[1])


def xxe_http(url):
    return (f'<?xml version="1.0"?><!DOCTYPE e SYSTEM "{url}dtd"[<!ENTITY x SYSTEM "{url}x">]>'
            + envelope("1.1", "<c:CustomerChanged xmlns:c='urn:example:crm'><c:id>&x;</c:id>"
                              "</c:CustomerChanged>").split("?>", 1)[1])


def billion_laughs(version):
    ents = ['<!ENTITY l0 "lol">'] + [f'<!ENTITY l{i} "{("&l%d;" % (i - 1)) * 10}">'
                                     for i in range(1, 10)]
    return (f'<?xml version="1.0"?><!DOCTYPE s [{"".join(ents)}]>'
            + envelope(version, "<c:CustomerChanged xmlns:c='urn:example:crm'><c:id>&l9;</c:id>"
                                "</c:CustomerChanged>").split("?>", 1)[1])


def deep(version, depth=10000):
    return envelope(version, "<a>" * depth + "</a>" * depth)


def declared_oversize(port, size, content_type):
    """Announces size bytes and waits for the answer without sending them."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    try:
        s.sendall(f"POST /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                  f"Content-Length: {size}\r\n\r\n".encode())
        resp = http.client.HTTPResponse(s)
        resp.begin()
        return SimpleNamespace(status_code=resp.status, content=resp.read(),
                               headers=dict(resp.getheaders()))
    finally:
        s.close()


def test_soap_in_attacks_refused_nothing_published(broker, soap_in, peers):
    fetched = Recorder(lambda h, b: (200, {"Content-Type": "text/plain"}, b"pwned"))
    peers.append(fetched)
    svc = soap_in()
    passwd = open("/etc/passwd").read().split("\n")[0]

    # Each: (request, status, version, text the faultstring must hold).
    attacks = [
        (post(svc.url, XXE_FILE), 500, "1.1", "DTD"),
        (post(svc.url, XXE_FILE.replace(SOAP11_NS, SOAP12_NS), "1.2"), 400, "1.2", "DTD"),
        (post(svc.url, xxe_http(fetched.url)), 500, "1.1", "DTD"),
        (post(svc.url, billion_laughs("1.1")), 500, "1.1", "DTD"),
        (post(svc.url, billion_laughs("1.2"), "1.2"), 400, "1.2", "DTD"),
        (post(svc.url, deep("1.1")), 500, "1.1", "deep"),
        (post(svc.url, deep("1.2"), "1.2"), 400, "1.2", "deep"),
        (post(svc.url, os.urandom(4096)), 500, "1.1", ""),
        (post(svc.url, b"\x00\xff<<garbage>>" * 100, "1.2"), 400, "1.2", ""),
        (post(svc.url, envelope("1.1", changed_xml()), **{"Content-Type": "application/json"}),
         415, "1.1", "content type"),
        (post(svc.url, envelope("1.2", changed_xml())), 415, "1.2", "use application/soap+xml"),
        (post(svc.url, envelope("1.1", changed_xml()).replace(SOAP11_NS, "urn:not-soap")),
         500, "1.1", "namespace"),
        (post(svc.url, f'<s:Envelope xmlns:s="{SOAP11_NS}"><s:Header/></s:Envelope>'),
         500, "1.1", "no Body"),
        (post(svc.url, envelope("1.2", ""), "1.2"), 400, "1.2", "Body is empty"),
        (requests.post(svc.url, data=envelope("1.1", changed_xml()), timeout=10), 415, "1.1",
         "no Content-Type"),
        (declared_oversize(svc.port, 20 << 20, CT11), 413, "1.1", "larger"),
        (declared_oversize(svc.port, 20 << 20, CT12), 413, "1.2", "larger"),
        (requests.post(svc.url, data=(b"<a>" * 65536 for _ in range(107)),  # 20 MiB, chunked
                       headers={"Content-Type": CT11}, timeout=60), 413, "1.1", "larger"),
    ]
    for i, (resp, status, version, reason) in enumerate(attacks):
        try:
            assert_client_fault(resp, status, version, reason)
            assert passwd.encode() not in resp.content and b"lollol" not in resp.content
        except AssertionError as e:
            raise AssertionError(f"attack #{i}: {e}") from e
    r = requests.get(svc.url, timeout=10)  # GET without ?wsdl
    assert_client_fault(r, 405)
    assert r.headers["Allow"] == "POST, GET"

    # Nothing was fetched, nothing published; the sidecar still answers, and says why it refused.
    r = post(svc.url, envelope("1.1", changed_xml("last")))
    assert r.status_code == 202 and r.content == b""
    msgs = collect(broker, svc.queue, 1)
    assert [p.message_id for p, _ in msgs] == [r.headers["X-Message-ID"]]
    assert b">last<" in msgs[0][1]
    assert broker.count(svc.dlq) == 0
    assert fetched.count() == 0
    log = svc.sidecar.log()
    assert "client error: malformed" in log and "client error: too large" in log
    assert "client error: content type" in log
    metrics = requests.get(svc.sidecar.admin + "/metrics", timeout=5).text
    assert svc.sidecar.proc.poll() is None and metrics


def test_soap_in_namespace_and_attribute_floods_refused_fast(broker, soap_in):
    """~1 MiB envelopes with 60 000 xmlns declarations or 60 000 attributes cost libxml2 and
    our namespace walk seconds of CPU each (9 s); now they are refused by a byte count before
    parsing, with a Client fault naming the limit, while a normal request sent at the same
    time goes through."""
    svc = soap_in()
    floods = {
        "namespaces": (f'<s:Envelope xmlns:s="{SOAP11_NS}"'
                       + "".join(f' xmlns:p{i}="u"' for i in range(60000))
                       + f"><s:Body>{changed_xml('ns')}</s:Body></s:Envelope>"),
        "attributes": envelope("1.1", f'<c:CustomerChanged xmlns:c="{CRM_NS}"'
                                      + "".join(f' a{i}=""' for i in range(60000))
                                      + "><c:id>at</c:id><c:name>x</c:name></c:CustomerChanged>"),
    }
    assert all(500000 < len(body) <= 1 << 20 for body in floods.values())
    answers = {}

    def send(name, body):
        started = time.monotonic()
        answers[name] = (post(svc.url, body), time.monotonic() - started)

    threads = [threading.Thread(target=send, args=(name, body)) for name, body in floods.items()]
    for t in threads:
        t.start()
    send("normal", envelope("1.1", changed_xml("calm")))
    for t in threads:
        t.join(30)
    r, took = answers["normal"]
    assert r.status_code == 202 and took < 5, (r.status_code, took)
    for name, want in (("namespaces", "declares more than 128 namespaces, the limit per element"),
                       ("attributes", "has more than 256 attributes, the limit per element")):
        r, took = answers[name]
        assert took < 5, (name, took)
        assert_client_fault(r, 500, "1.1", want)
    msgs = collect(broker, svc.queue, 1)
    assert [ET.fromstring(b).findtext(f"{{{CRM_NS}}}id") for _, b in msgs] == ["calm"]
    assert "client error: malformed" in svc.sidecar.log()


def post11(url, body, soapaction):
    """A SOAP 1.1 POST with exactly this SOAPAction header value (None: no header)."""
    h = {"Content-Type": CT11}
    if soapaction is not None:
        h["SOAPAction"] = soapaction
    return requests.post(url, data=body.encode(), headers=h, timeout=30)


def test_soap_in_soapaction_checked_against_the_wsdl(broker, soap_in):
    """WS-I BP: a SOAP 1.1 request carries SOAPAction (SOAP 1.1 section 6.1.1, R2744) and, the
    route having a WSDL, it is the soapAction the binding declares for the Body's operation
    (R2744/R2745). Unquoted values pass (R1109 says quoted; many clients do not). SOAP 1.2's
    action= is optional, but when sent it is held to the WSDL too."""
    svc = soap_in()
    want = '"urn:example:crm/CustomerChanged"'
    r = post11(svc.url, envelope("1.1", changed_xml("none")), None)
    reason = assert_client_fault(r, 500, "1.1", "must carry a SOAPAction header")
    assert f"CustomerChanged expects {want}" in reason
    for sent in ('"urn:example:crm/GetCustomer"', '""', "", '"urn:example:crm/customerchanged"'):
        r = post11(svc.url, envelope("1.1", changed_xml("wrong")), sent)
        reason = assert_client_fault(r, 500, "1.1", "does not match the WSDL")
        assert f"CustomerChanged expects {want}" in reason, (sent, reason)
    get = envelope("1.1", f'<c:GetCustomer xmlns:c="{CRM_NS}"><c:id>1</c:id></c:GetCustomer>')
    r = post11(svc.url, get, want)
    assert_client_fault(r, 500, "1.1", 'GetCustomer expects "urn:example:crm/GetCustomer"')
    r = post(svc.url, envelope("1.2", changed_xml("wrong12")), "1.2", action="urn:x:Other")
    assert_client_fault(r, 400, "1.2", 'action "urn:x:Other" does not match the WSDL')

    accepted = [post11(svc.url, envelope("1.1", changed_xml("quoted")), want),
                post11(svc.url, envelope("1.1", changed_xml("bare")), want.strip('"')),
                requests.post(svc.url, data=envelope("1.2", changed_xml("noaction")).encode(),
                              headers={"Content-Type": CT12}, timeout=30),
                post(svc.url, envelope("1.2", changed_xml("action12")), "1.2")]
    assert [r.status_code for r in accepted] == [202] * 4, [r.text for r in accepted]
    # an operation the WSDL does not describe cannot be checked: any action goes
    r = post11(svc.url, envelope("1.1", '<u:Unlisted xmlns:u="urn:u"/>'), '"urn:u:anything"')
    assert r.status_code == 202

    msgs = collect(broker, svc.queue, 5)
    ids = {ET.fromstring(b).findtext(f"{{{CRM_NS}}}id") for _, b in msgs}
    assert ids == {"quoted", "bare", "noaction", "action12", None}
    actions = {header(p, "x-soap-action") for p, _ in msgs}
    assert actions == {"urn:example:crm/CustomerChanged", None, "urn:u:anything"}
    assert "client error: soap action" in svc.sidecar.log()


def test_soap_in_soapaction_without_wsdl(broker, soap_in):
    """Without a WSDL there is nothing to match: any SOAPAction goes, but SOAP 1.1 still
    requires the header."""
    svc = soap_in(wsdl=False)
    r = post11(svc.url, envelope("1.1", changed_xml("none")), None)
    reason = assert_client_fault(r, 500, "1.1", "must carry a SOAPAction header")
    assert "expects" not in reason
    assert requests.get(svc.url + "?wsdl", timeout=10).status_code == 404
    for id_, sent in (("empty", '""'), ("other", '"urn:whatever"'), ("blank", "")):
        assert post11(svc.url, envelope("1.1", changed_xml(id_)), sent).status_code == 202
    msgs = collect(broker, svc.queue, 3)
    assert sorted(ET.fromstring(b).findtext(f"{{{CRM_NS}}}id") for _, b in msgs) == \
        ["blank", "empty", "other"]


def test_soap_in_username_token_and_bearer(broker, soap_in, tmp_path):
    token = secret_file(tmp_path, "bearer", "tok-123")
    password = secret_file(tmp_path, "wsse", "s3cret pass")
    svc = soap_in(f'auth = {{ bearer_token_file = "{token}"; }}; wsse_username = "crm"; '
                  f'wsse_password_file = "{password}";')
    bearer = {"Authorization": "Bearer tok-123"}

    # HTTP auth first: no bearer → 401 with a Client fault.
    r = post(svc.url, envelope("1.1", changed_xml()))
    assert_client_fault(r, 401, "1.1", "unauthorized")
    assert r.headers["WWW-Authenticate"] == "Bearer"

    # zeep with the right UsernameToken passes; the password never reaches the broker.
    session = requests.Session()
    session.headers.update(bearer)
    good = zeep.Client(svc.url + "?wsdl", wsse=UsernameToken("crm", "s3cret pass"),
                       transport=Transport(session=session, timeout=15))
    assert port_of(good, "1.1").CustomerChanged(id="ok", name="Ada") is None
    assert port_of(good, "1.2").CustomerChanged(id="ok12", name="Ada") is None

    for user, pw in (("crm", "wrong"), ("intruder", "s3cret pass")):
        bad = zeep.Client(svc.url + "?wsdl", wsse=UsernameToken(user, pw),
                          transport=Transport(session=session, timeout=15))
        with pytest.raises(zeep.exceptions.Fault) as e:
            port_of(bad, "1.1").CustomerChanged(id="no", name="x")
        assert e.value.message == "authentication failed"
    digest = zeep.Client(svc.url + "?wsdl", wsse=UsernameToken("crm", "s3cret pass",
                                                               use_digest=True),
                         transport=Transport(session=session, timeout=15))
    with pytest.raises(zeep.exceptions.Fault):
        port_of(digest, "1.2").CustomerChanged(id="no", name="x")
    r = post(svc.url, envelope("1.2", changed_xml("no")), "1.2", **bearer)  # no token at all
    assert_client_fault(r, 400, "1.2", "authentication failed")

    msgs = collect(broker, svc.queue, 2)
    ids = sorted(ET.fromstring(b).findtext(f"{{{CRM_NS}}}id") for _, b in msgs)
    assert ids == ["ok", "ok12"]
    assert not any(b"s3cret" in b or b"Security" in b for _, b in msgs)
    assert "UsernameToken: wrong password" in svc.sidecar.log()
    assert "PasswordDigest" in svc.sidecar.log()


def test_soap_in_unroutable_is_parked(broker, soap_in):
    svc = soap_in(bind="nothing.matches")
    r = post(svc.url, envelope("1.2", changed_xml("lost")), "1.2",
             **{"Idempotency-Key": "idem-lost-1"})
    assert r.status_code == 202 and r.content == b""
    assert r.headers["X-Sidecar-Routed"] == "false"
    assert r.headers["X-Message-ID"] == "idem-lost-1"
    parked = collect(broker, svc.dlq, 1)
    assert len(parked) == 1
    props, body = parked[0]
    assert header(props, "x-sidecar-error").startswith("unroutable")
    assert props.message_id == r.headers["X-Message-ID"] and b">lost<" in body
    assert broker.count(svc.queue) == 0


def test_soap_in_broker_down_answers_503_fault(broker, soap_in):
    svc = soap_in('retry_after = 7;')
    broker.stop()
    try:
        r = wait_for(lambda: [x for x in [post(svc.url, envelope("1.1", changed_xml("down")))]
                              if x.status_code == 503], 15, what="503 while the broker is down")[0]
        assert r.headers["Retry-After"] == "7"
        code, reason, _ = fault_of(r)
        assert code == "soap:Server" and "try again later" in reason
        r = post(svc.url, envelope("1.2", changed_xml("down")), "1.2")
        assert r.status_code == 503 and fault_of(r)[0] == "soap:Receiver"
    finally:
        broker.start()
    wait_for(lambda: post(svc.url, envelope("1.1", changed_xml("back"))).status_code == 202, 30,
             what="202 after the broker is back")
    msgs = collect(broker, svc.queue, 1)
    assert [ET.fromstring(b).findtext(f"{{{CRM_NS}}}id") for _, b in msgs] == ["back"]


def test_soap_in_spools_one_way_calls_while_the_broker_is_down(broker, soap_in, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    svc = soap_in(f'spool = {{ dir = "{spool}"; }};')
    broker.stop()
    try:
        for i in range(3):
            r = post(svc.url, envelope("1.1", changed_xml(f"s{i}")), **{"Idempotency-Key": f"s{i}"})
            assert r.status_code == 202 and r.content == b""
            assert r.headers["X-Sidecar-Spooled"] == "true" and r.headers["X-Message-ID"] == f"s{i}"
    finally:
        broker.start()
    msgs = collect(broker, svc.queue, 3, timeout=40)
    assert [p.message_id for p, _ in msgs] == ["s0", "s1", "s2"]
    assert [ET.fromstring(b).findtext(f"{{{CRM_NS}}}id") for _, b in msgs] == ["s0", "s1", "s2"]


# ---- outbound: spyne and scripted peers -------------------------------------------------

def update_xml(id_, name="Ada"):
    return (f'<tns:UpdateCustomer xmlns:tns="{LEGACY_NS}"><tns:id>{id_}</tns:id>'
            f'<tns:name>{name}</tns:name></tns:UpdateCustomer>')


def soap_out_route(url, keys=""):
    return (f'{{ name = "legacy"; kind = "soap"; url = "{url}"; '
            f'action = "urn:example:legacy/UpdateCustomer"; timeout = 5.0; {FAST_RETRY} {keys} }}')


def test_soap_out_spyne_11_reply_client_and_server_faults(broker, sidecar, uid, peers):
    legacy = LegacySoapService("1.1")
    peers.append(legacy)
    sidecar(name=uid, outbound=soap_out_route(legacy.url))
    queue, dlq, replies = f"{uid}.legacy", f"{uid}.legacy.dlq", f"{uid}.replies"
    broker.declare_queue(replies)

    broker.publish("", queue, update_xml("42").encode(), content_type="application/xml",
                   reply_to=replies, correlation_id="c-42", message_id="m-42")
    broker.publish("", queue, update_xml("bad").encode(), content_type="application/xml",
                   message_id="m-bad")
    broker.publish("", queue, update_xml("flaky").encode(), content_type="application/xml",
                   message_id="m-flaky")

    reply = collect(broker, replies, 1)
    assert len(reply) == 1
    props, body = reply[0]
    assert props.correlation_id == "c-42" and props.content_type == "application/xml"
    element = ET.fromstring(body)
    assert element.tag == f"{{{LEGACY_NS}}}UpdateCustomerResponse"
    assert element.findtext(f"{{{LEGACY_NS}}}UpdateCustomerResult") == "updated 42 (Ada)"

    dead = {p.message_id: (p, b) for p, b in collect(broker, dlq, 2, 15)}
    assert len(dead) == 2
    props, body = dead["m-bad"]
    assert header(props, "x-sidecar-error").startswith("SOAP Client fault")
    assert "unknown customer bad" in header(props, "x-sidecar-error")
    assert header(props, "x-sidecar-attempts") in (1, "1")
    assert body == update_xml("bad").encode()  # the original, untouched
    props, _ = dead["m-flaky"]
    assert "database down, try later" in header(props, "x-sidecar-error")
    assert header(props, "x-sidecar-attempts") in (3, "3")
    assert legacy.calls(b">bad<") == 1 and legacy.calls(b">flaky<") == 3
    assert legacy.calls(b">42<") == 1

    headers, body = next((h, b) for h, b in legacy.requests if b">42<" in b)
    assert headers["soapaction"] == '"urn:example:legacy/UpdateCustomer"'
    assert headers["content-type"] == "text/xml; charset=utf-8"
    assert headers["idempotency-key"] == "m-42" and headers["x-correlation-id"] == "c-42"
    assert ET.fromstring(body).tag == f"{{{SOAP11_NS}}}Envelope"
    assert broker.count(queue) == 0


def test_soap_out_spyne_12_json_transform_and_json_reply(broker, sidecar, uid, peers, tmp_path):
    legacy = LegacySoapService("1.2")
    peers.append(legacy)
    jq = tmp_path / "to_soap.jq"
    jq.write_text('{"l:UpdateCustomer": {"@xmlns:l": "urn:example:legacy", '
                  '"l:id": .customer.id, "l:name": .customer.name}}\n')
    sidecar(name=uid, outbound=soap_out_route(
        legacy.url, f'soap_version = "1.2"; format = "json"; transform = "{jq}";'))
    queue, dlq, replies = f"{uid}.legacy", f"{uid}.legacy.dlq", f"{uid}.replies"
    broker.declare_queue(replies)

    broker.publish("", queue, json.dumps({"customer": {"id": 42, "name": "Ada"}}).encode(),
                   content_type="application/json", reply_to=replies, correlation_id="c-1")
    broker.publish("", queue, json.dumps({"customer": {"id": "bad", "name": "x"}}).encode(),
                   content_type="application/json", message_id="m-bad")
    broker.publish("", queue, b'{"customer": ', content_type="application/json",
                   message_id="m-broken")

    props, body = collect(broker, replies, 1)[0]
    assert props.correlation_id == "c-1" and props.content_type == "application/json"
    ((name, value),) = json.loads(body).items()
    assert name.endswith("UpdateCustomerResponse")
    assert [v for k, v in value.items() if k.endswith("UpdateCustomerResult")] == \
        ["updated 42 (Ada)"]

    dead = {p.message_id: p for p, _ in collect(broker, dlq, 2, 15)}
    assert len(dead) == 2
    assert "SOAP Sender fault" in header(dead["m-bad"], "x-sidecar-error")
    assert "unknown customer bad" in header(dead["m-bad"], "x-sidecar-error")
    assert header(dead["m-broken"], "x-sidecar-error").startswith("transform failed")
    assert header(dead["m-broken"], "x-sidecar-attempts") in (0, "0")

    headers, body = next((h, b) for h, b in legacy.requests if b">42<" in b)
    assert headers["content-type"] == \
        'application/soap+xml; charset=utf-8; action="urn:example:legacy/UpdateCustomer"'
    assert "soapaction" not in headers
    assert ET.fromstring(body).tag == f"{{{SOAP12_NS}}}Envelope"
    assert legacy.calls(b">bad<") == 1 and len(legacy.requests) == 2


def test_soap_out_statuses_wsse_and_unparseable_answers(broker, sidecar, uid, peers, tmp_path):
    fault_200 = envelope("1.1", "<s:Fault><faultcode>s:Client.Validation</faultcode>"
                                "<faultstring>name too long</faultstring></s:Fault>")

    def respond(headers, body):
        for key, answer in (
                (b">notfound<", (404, {"Content-Type": "text/plain"}, b"no such endpoint")),
                (b">busy<", (503, {"Content-Type": "text/html"}, b"<h1>maintenance</h1>")),
                (b">plain<", (200, {"Content-Type": "text/plain"}, b"OK")),
                (b">fault200<", (200, {"Content-Type": "text/xml"}, fault_200.encode())),
                (b">empty<", (202, {}, b""))):
            if key in body:
                return answer
        if b">slow<" in body:
            time.sleep(1.0)
            return 200, {}, b""
        return 500, {}, b"unexpected"
    legacy = Recorder(respond)
    peers.append(legacy)
    password = secret_file(tmp_path, "pw", "p<&>w")
    refused_url = f"http://127.0.0.1:{free_port()}/nobody"
    sidecar(name=uid, outbound=soap_out_route(
        legacy.url, f'wsse_username = "crm"; wsse_password_file = "{password}"; '
                    f'headers = {{ X-Api-Version = "2"; }};')
        + ", " + soap_out_route(refused_url).replace('"legacy"', '"refused"')
        + ", " + soap_out_route(legacy.url).replace('"legacy"', '"slow"').replace(
            "timeout = 5.0", "timeout = 0.3"))
    queue, dlq, replies = f"{uid}.legacy", f"{uid}.legacy.dlq", f"{uid}.replies"
    broker.declare_queue(replies)
    for id_ in ("notfound", "busy", "fault200"):
        broker.publish("", queue, update_xml(id_).encode(), content_type="application/xml",
                       message_id=f"m-{id_}")
    for id_ in ("plain", "empty"):
        broker.publish("", queue, update_xml(id_).encode(), content_type="application/xml",
                       message_id=f"m-{id_}", reply_to=replies, correlation_id=f"c-{id_}")
    broker.publish("", queue, b"not xml at all", content_type="text/plain", message_id="m-junk")
    broker.publish("", f"{uid}.refused", update_xml("r").encode(), message_id="m-refused")
    broker.publish("", f"{uid}.slow", update_xml("slow").encode(), message_id="m-slow")

    dead = {p.message_id: p for p, _ in collect(broker, dlq, 4, 15)}
    assert len(dead) == 4
    error = {k: header(p, "x-sidecar-error") for k, p in dead.items()}
    attempts = {k: int(header(p, "x-sidecar-attempts")) for k, p in dead.items()}
    assert error["m-notfound"].startswith("HTTP 404") and attempts["m-notfound"] == 1
    assert "no such endpoint" in error["m-notfound"]
    assert error["m-busy"].startswith("gave up after 3 attempts: HTTP 503")
    assert attempts["m-busy"] == 3
    assert "SOAP Client fault s:Client.Validation (HTTP 200): name too long" == error["m-fault200"]
    assert "not one well-formed XML element" in error["m-junk"] and attempts["m-junk"] == 0

    replied = {p.correlation_id: (p, b) for p, b in collect(broker, replies, 2)}
    assert len(replied) == 2
    props, body = replied["c-plain"]
    assert body == b"OK" and header(props, "x-sidecar-error").startswith(
        "response is not a SOAP envelope")
    props, body = replied["c-empty"]
    assert body == b"" and header(props, "x-sidecar-error") is None

    refused = collect(broker, f"{uid}.refused.dlq", 1, 15)
    assert "call failed" in header(refused[0][0], "x-sidecar-error")
    assert int(header(refused[0][0], "x-sidecar-attempts")) == 3
    slow = collect(broker, f"{uid}.slow.dlq", 1, 15)
    assert "no answer in time" in header(slow[0][0], "x-sidecar-error")
    assert int(header(slow[0][0], "x-sidecar-attempts")) == 3

    # The UsernameToken (PasswordText, escaped) and the extra header were sent.
    headers, body = next((h, b) for h, b in legacy.requests if b">notfound<" in b)
    assert headers["x-api-version"] == "2"
    root = ET.fromstring(body)
    token = root.find(f"{{{SOAP11_NS}}}Header/{{{WSSE_NS}}}Security/{{{WSSE_NS}}}UsernameToken")
    assert token.findtext(f"{{{WSSE_NS}}}Username") == "crm"
    assert token.findtext(f"{{{WSSE_NS}}}Password") == "p<&>w"
    assert token.find(f"{{{WSSE_NS}}}Password").get("Type").endswith("#PasswordText")
    assert sum(1 for _, b in legacy.requests if b">slow<" not in b) == 1 + 3 + 1 + 1 + 1
    assert sum(1 for _, b in legacy.requests if b">slow<" in b) == 3


def test_soap_out_shutdown_mid_call_gives_the_delivery_back(broker, sidecar, uid, peers):
    """A call still running when drain_timeout passes is abandoned: its delivery is freed
    (the sanitizer check at stop finds no leak) and the broker keeps the message."""
    def respond(headers, body):
        time.sleep(8)
        return 500, {}, b"too late"
    legacy = Recorder(respond)
    peers.append(legacy)
    s = sidecar(name=uid, outbound=soap_out_route(legacy.url).replace("timeout = 5.0",
                                                                      "timeout = 30.0"),
                extra="drain_timeout = 1;")
    broker.publish("", f"{uid}.legacy", update_xml("1").encode(), content_type="application/xml",
                   message_id="m-1")
    wait_for(lambda: len(legacy.requests) == 1, 10, what="the legacy call")
    s.stop()
    assert "call abandoned at shutdown" in s.log()
    got = broker.get_all(f"{uid}.legacy")
    assert [p.message_id for p, _ in got] == ["m-1"]


def test_soap_bridge_zeep_to_spyne_through_rabbitmq(broker, sidecar, uid, peers, tmp_path):
    """zeep → soap in (rpc) → RabbitMQ → soap out → spyne, and the answer all the way back:
    the sidecar as a SOAP proxy whose traffic is visible, retried and dead-lettered in
    RabbitMQ. The WSDL is spyne's own, re-addressed to the sidecar."""
    legacy = LegacySoapService("1.1")
    peers.append(legacy)
    wsdl = tmp_path / "legacy.wsdl"
    wsdl.write_bytes(requests.get(legacy.url + "?wsdl", timeout=10).content)
    exchange = f"{uid}.ex"
    broker.declare_exchange(exchange)
    port = free_port()
    url = f"http://127.0.0.1:{port}/legacy"
    inbound = (f'{{ name = "front"; kind = "soap"; listen = "127.0.0.1:{port}"; path = "/legacy"; '
               f'exchange = "{exchange}"; routing_key = "soap.{{operation}}"; mode = "rpc"; '
               f'timeout = 3.0; wsdl = "{wsdl}"; wsdl_address = "{url}"; '
               f'pass_headers = ["X-Tenant"]; }}')
    outbound = soap_out_route(legacy.url, 'pass_headers = ["x-tenant"];').replace(
        'action = "urn:example:legacy/UpdateCustomer"', 'action = "{header.x-soap-action}"')
    sidecar(name=uid, inbound=inbound, outbound=outbound)
    with broker.channel() as ch:
        ch.queue_bind(f"{uid}.legacy", exchange, "soap.UpdateCustomer")

    session = requests.Session()
    session.headers["X-Tenant"] = "eu-1"
    client = zeep.Client(url + "?wsdl", transport=Transport(session=session, timeout=15))
    assert client.service.UpdateCustomer(id="42", name="Ada") == "updated 42 (Ada)"

    headers, body = legacy.requests[-1]
    assert headers["soapaction"] == '"UpdateCustomer"'  # zeep's, carried via x-soap-action
    assert headers["x-tenant"] == "eu-1"
    assert b">42<" in body

    # A Client fault travels back to the caller as a Client fault (at once, not after the
    # rpc timeout), and the request is dead-lettered with the faultstring.
    started = time.monotonic()
    with pytest.raises(zeep.exceptions.Fault) as e:
        client.service.UpdateCustomer(id="bad", name="x")
    assert "unknown customer bad" in e.value.message
    assert e.value.code.endswith("Client")
    assert time.monotonic() - started < 5
    dead = collect(broker, f"{uid}.legacy.dlq", 1)
    assert "unknown customer bad" in header(dead[0][0], "x-sidecar-error")


# ---- config --------------------------------------------------------------------------------

def test_soap_example_config_checks():
    r = run_cli("check", "-c", os.path.join(ROOT, "configs", "soap.conf"))
    assert r.returncode == 0, r.stderr


def test_soap_config_errors_name_the_line(tmp_path, broker):
    bad_wsdl = tmp_path / "bad.wsdl"
    bad_wsdl.write_text('<!DOCTYPE d [<!ENTITY x "y">]><definitions/>')
    conf = tmp_path / "bad.conf"
    conf.write_text(f'''name = "bad";
broker = {{ url = "{broker.url}"; }};
inbound = (
  {{ name = "a"; kind = "soap"; path = "/ws"; exchange = "x"; routing_key = "{{json.id}}";
     wsse_username = "crm"; transform = "{tmp_path}/t.jq"; }},
  {{ name = "b"; kind = "soap"; listen = "127.0.0.1:1"; path = "/b"; exchange = "x";
     wsdl = "{bad_wsdl}"; }}
);
outbound = (
  {{ name = "c"; kind = "soap"; url = "http://127.0.0.1:1/"; soap_version = "1.3";
     action = "urn:{{json.x}}"; }}
);
''')
    (tmp_path / "t.jq").write_text(".\n")
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 2, r.stderr
    err = r.stderr
    assert f"{conf}:4:" in err and "wsse_username and wsse_password_file" in err
    assert "{json.id}" in err and "set format = \"json\"" in err
    assert f"{conf}:6:" in err and "bad.wsdl" in err and "DTD" in err
    assert "soap_version" in err and "1.3" in err
    assert "action" in err and "{header.NAME}" in err
