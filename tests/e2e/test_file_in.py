"""File inbound (a drop directory → AMQP): every format record for record, ids
derived from the content, files never published half-written, malformed files
to failed_dir with a DLQ copy and nothing published, and crash / broker-outage
recovery that publishes every record (duplicates allowed, none missing)."""
import json
import os
import re

import pytest

from conftest import plain, run_cli, wait_for
from file_helpers import (FileIn, Route, csv_bytes, csv_expected, csv_rows,
                          expected_id, file_prefix, header, listing, settle, sigkill,
                          wait_count)


def bodies(msgs):
    return [b.decode() for _, b in msgs]


# ---- formats ----------------------------------------------------------------------------

@pytest.mark.parametrize("delimiter,line_end,bom", [(",", "\n", False), (";", "\r\n", True)],
                         ids=["comma-lf", "semicolon-crlf-bom"])
def test_file_in_csv_edge_cases_exact_in_order(broker, sidecar, uid, tmp_path, delimiter,
                                               line_end, bom):
    extra = f'delimiter = "{delimiter}";' if delimiter != "," else ""
    r = Route(str(tmp_path), uid, "invoices", "csv", extra=extra)
    t = FileIn(broker, sidecar, uid, [r])
    content = csv_bytes(["id", "name", "amount", "note", "empty"], csv_rows(1200), delimiter,
                        line_end, bom)
    expected = csv_expected(content, delimiter)
    assert len(expected) == 1200
    r.drop("invoices.csv", content)
    r.wait_done("invoices.csv")
    msgs = t.messages(r)
    assert bodies(msgs) == expected  # exact JSON, every value a string, in file order
    for i, (props, _) in enumerate(msgs):
        assert props.message_id == expected_id(content, i)
        assert props.correlation_id == file_prefix(content)
        assert props.content_type == "application/json"
        assert props.delivery_mode == 2
        assert header(props, "x-sidecar-filename") == "invoices.csv"
        assert header(props, "x-sidecar-record") == str(i)
        assert header(props, "x-sidecar-route") == "invoices"
    with open(os.path.join(r.done, "invoices.csv"), "rb") as f:
        assert f.read() == content  # filed unchanged
    assert listing(r.processing) == [] and listing(r.dir) == [".processing"]
    assert broker.count(r.dlq) == 0


def test_file_in_formats_jsonl_json_raw_xml(broker, sidecar, uid, tmp_path):
    routes = {
        "lines": Route(str(tmp_path), uid, "lines", "jsonl"),
        "split": Route(str(tmp_path), uid, "split", "json", extra="split = true;"),
        "whole": Route(str(tmp_path), uid, "whole", "json"),
        "blobs": Route(str(tmp_path), uid, "blobs", "raw",
                       extra='content_type = "application/pdf"; pattern = "*.pdf";'),
        "docs": Route(str(tmp_path), uid, "docs", "xml"),
    }
    t = FileIn(broker, sidecar, uid, list(routes.values()))

    jsonl = b'{"a":1}\r\n\n   \n{"b":"x, y"}\n[1,2.50000000000000000001]\n"s"'
    routes["lines"].drop("l.jsonl", jsonl)
    split = ('\ufeff [ {"s":"],[\\"}","n":[1,[2]]} , 12345678901234567890.5,"x",\n'
             ' null , {"deep":{"a":[{}]}} ]\n').encode()
    routes["split"].drop("a.json", split)
    whole = b'{"order": {"id": 7, "lines": [1, 2]}}\n'
    routes["whole"].drop("w.json", whole)
    blob = bytes(range(256)) * 40
    routes["blobs"].drop("doc.pdf", blob)
    routes["blobs"].drop("ignored.txt", b"not matching the pattern")
    routes["blobs"].drop(".hidden.pdf", b"a dotfile")
    xml = b'<?xml version="1.0"?>\n<inv:doc xmlns:inv="urn:x"><inv:n a="1">t &amp; u</inv:n></inv:doc>'
    routes["docs"].drop("d.xml", xml)

    for name, route in [("l.jsonl", "lines"), ("a.json", "split"), ("w.json", "whole"),
                        ("doc.pdf", "blobs"), ("d.xml", "docs")]:
        routes[route].wait_done(name)

    lines = t.messages(routes["lines"])
    assert bodies(lines) == ['{"a":1}', '{"b":"x, y"}', '[1,2.50000000000000000001]', '"s"']
    assert [p.message_id for p, _ in lines] == [expected_id(jsonl, i) for i in range(4)]
    assert [header(p, "x-sidecar-record") for p, _ in lines] == ["0", "1", "2", "3"]

    elems = t.messages(routes["split"])
    assert bodies(elems) == ['{"s":"],[\\"}","n":[1,[2]]}', "12345678901234567890.5", '"x"',
                             "null", '{"deep":{"a":[{}]}}']
    assert [p.message_id for p, _ in elems] == [expected_id(split, i) for i in range(5)]

    [(wp, wb)] = t.messages(routes["whole"])
    assert wb == whole.rstrip(b"\n") or wb == whole
    assert json.loads(wb) == json.loads(whole)
    assert wp.message_id == expected_id(whole, 0) and header(wp, "x-sidecar-record") is None

    [(bp, bb)] = t.messages(routes["blobs"])
    assert bb == blob and bp.content_type == "application/pdf"
    assert header(bp, "x-sidecar-filename") == "doc.pdf"
    settle(1.5)  # a scan_interval: the others must still be left alone
    assert sorted(listing(routes["blobs"].dir)) == [".hidden.pdf", ".processing", "ignored.txt"]

    [(xp, xb)] = t.messages(routes["docs"])
    assert xb == xml and xp.content_type == "application/xml"


def test_file_in_transform_and_record_routing_keys(broker, sidecar, uid, tmp_path):
    jq = tmp_path / "amount.jq"
    jq.write_text('{id: .id, kind: .kind, amount: (.amount | tonumber)}')
    r = Route(str(tmp_path), uid, "rows", "csv", routing_key="file.rows.{json.kind}",
              bind="file.rows.invoice", extra=f'transform = "{jq}";')
    t = FileIn(broker, sidecar, uid, [r])
    good = b"id,kind,amount\n1,invoice,10.5\n2,credit,3\n3,invoice,7\n"
    r.drop("good.csv", good)
    r.wait_done("good.csv")
    msgs = t.messages(r)  # only invoices are bound; the credit note is parked as unroutable
    assert bodies(msgs) == ['{"id":"1","kind":"invoice","amount":10.5}',
                            '{"id":"3","kind":"invoice","amount":7}']
    assert [p.message_id for p, _ in msgs] == [expected_id(good, 0), expected_id(good, 2)]
    [(dp, db)] = t.dead(r)
    assert json.loads(db)["kind"] == "credit" and "unroutable" in header(dp, "x-sidecar-error")

    bad = b"id,kind,amount\n1,invoice,10.5\n2,invoice,ten\n"  # record 1 fails the transform
    r.drop("bad.csv", bad)
    r.wait_failed("bad.csv")
    assert t.messages(r) == []  # nothing of it: not even record 0
    error = (tmp_path / "rows" / "failed" / "bad.csv.error").read_text()
    assert "record 1 (line 3): transform failed" in error
    [(cp, cb)] = t.dead(r)
    assert cb == bad and "transform failed" in header(cp, "x-sidecar-error")
    # The closing summary adds up: 3 records and 1 malformed file taken in = 2 confirmed to
    # the exchange + 1 unroutable + 1 file copy confirmed to the DLQ.
    assert t.sidecar.stop() == 0
    summary = [ln for ln in t.sidecar.log().splitlines() if "received=" in ln]
    assert summary and "received=4 confirmed=3 unroutable=1 failed=0" in summary[-1], summary


# ---- malformed files --------------------------------------------------------------------

MALFORMED = [
    ("csv", "", b'id,name\n1,ok\n2,"unclosed\n3,x\n', "line 3, column 3"),
    ("csv", "", b"id,name\n1,a\n2,b,c\n", "line 3"),
    ("jsonl", "", b'{"a":1}\n{"b":2}\n{"c":\n', "line 3, column"),
    ("json", "split = true;", b'[{"a":1},\n {"b":}]', "line 2, column"),
    ("json", "split = true;", b'{"not":"an array"}', "needs a JSON array"),
    ("json", "", b'{"a":1', "line 1, column"),
    ("xml", "", b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b'\n<d>&x;</d>', "line 2"),
    ("xml", "", b"<a><b></a>", "line 1"),
    ("raw", "max_file = 100;", b"x" * 101, "larger than max_file"),
]


@pytest.mark.parametrize("fmt,extra,content,where", MALFORMED,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MALFORMED)])
def test_file_in_malformed_to_failed_dir_and_dlq(broker, sidecar, uid, tmp_path, fmt, extra,
                                                 content, where):
    r = Route(str(tmp_path), uid, "feed", fmt, extra=extra)
    t = FileIn(broker, sidecar, uid, [r])
    r.drop("bad.dat", content)
    r.wait_failed("bad.dat")
    with open(os.path.join(r.failed, "bad.dat"), "rb") as f:
        assert f.read() == content
    error = open(os.path.join(r.failed, "bad.dat.error")).read()
    assert where in error and "bad.dat" in error
    assert broker.count(r.queue) == 0  # nothing half-published
    [(props, body)] = t.dead(r)
    assert header(props, "x-sidecar-error").startswith(f'malformed {fmt} file "bad.dat": ')
    assert where in header(props, "x-sidecar-error")
    assert header(props, "x-sidecar-filename") == "bad.dat"
    assert props.message_id == file_prefix(content)
    assert body == (b"" if fmt == "raw" else content)  # over max_file: no body, see failed_dir
    assert listing(r.processing) == []
    assert "rejected" in plain(t.sidecar.log())
    # the route is not stuck: the next good file is published
    good = {"raw": b"ok", "csv": b"a\n1\n", "jsonl": b"1\n", "json": b"[1]", "xml": b"<a/>"}[fmt]
    r.drop("next.dat", good)
    r.wait_done("next.dat")
    assert broker.count(r.queue) == 1


# ---- messages the broker would refuse ----------------------------------------------------

def xml_doc(n):
    return b'<?xml version="1.0"?>\n<doc>' + b"<i>x</i>" * n + b"</doc>"


BIG = {  # fmt, extra, content, the DLQ copy has the file as its body (it fits)
    "raw": ("raw", "", b"r" * 4097, False),
    "xml": ("xml", "", xml_doc(520), False),
    "json": ("json", "", b'{"a":"' + b"j" * 4100 + b'"}', False),
    "jsonl": ("jsonl", "", b'{"ok":1}\n"' + b"l" * 4100 + b'"\n', False),
    # 700 control characters: 700 bytes written, 4200 as JSON ("\u0001" each)
    "csv": ("csv", "", b"id,note\n1,ok\n2," + b"\x01" * 700 + b"\n", True),
    "transform": ("jsonl", 'transform = "{jq}";', b'{"a":"xy"}\n', True),
}


@pytest.mark.parametrize("case", list(BIG))
def test_file_in_message_over_max_message_is_refused_before_the_broker(broker, sidecar, uid,
                                                                      tmp_path, case):
    fmt, extra, content, copy_has_body = BIG[case]
    jq = tmp_path / "big.jq"
    jq.write_text("{big: (.a * 3000)}")  # 6000 bytes out of 10 in
    r = Route(str(tmp_path), uid, "big", fmt,
              extra="max_message = 4096; " + extra.replace("{jq}", str(jq)))
    t = FileIn(broker, sidecar, uid, [r])
    r.drop("big.dat", content)
    r.wait_failed("big.dat")
    error = open(os.path.join(r.failed, "big.dat.error")).read()
    assert "max_message (4096 bytes)" in error, error
    assert broker.count(r.queue) == 0  # nothing of it, not even the records that fit
    [(props, body)] = t.dead(r)
    assert "max_message" in header(props, "x-sidecar-error")
    assert body == (content if copy_has_body else b"")
    assert len(body) <= 4096
    with open(os.path.join(r.failed, "big.dat"), "rb") as f:
        assert f.read() == content
    good = {"raw": b"r" * 4096, "xml": b"<a/>", "json": b"[1]", "jsonl": b'{"a":"x"}\n',
            "csv": b"id\n1\n", "transform": b'{"a":"x"}\n'}[case]
    r.drop("next.dat", good)  # not stuck, and a message of exactly max_message goes out
    r.wait_done("next.dat")
    assert broker.count(r.queue) == 1


@pytest.fixture
def broker_max_message_size(broker):
    """Lowers the broker's max_message_size for channels opened during the test."""
    before = broker.ctl("eval", "application:get_env(rabbit, max_message_size).").strip()
    m = re.fullmatch(r"\{ok,(\d+)\}", before)
    assert m, before
    broker.ctl("eval", "application:set_env(rabbit, max_message_size, 65536).")
    try:
        yield 65536
    finally:
        broker.ctl("eval", f"application:set_env(rabbit, max_message_size, {m[1]}).")


def test_file_in_max_message_keeps_files_within_the_brokers_limit(broker, sidecar, uid,
                                                                  tmp_path,
                                                                  broker_max_message_size):
    # A file over the broker's limit would close the shared publisher's channel and be retried
    # forever; bounded by max_message it is refused here, and the connection serves the rest.
    limit = broker_max_message_size
    r = Route(str(tmp_path), uid, "limit", "raw",
              extra=f"max_file = 1048576; max_message = {limit};")
    t = FileIn(broker, sidecar, uid, [r])
    r.drop("over.bin", b"o" * (limit + 1))
    r.wait_failed("over.bin")
    r.drop("at.bin", b"a" * limit)
    r.wait_done("at.bin")
    [(_, body)] = t.messages(r)
    assert body == b"a" * limit
    [(props, body)] = t.dead(r)
    assert body == b"" and "larger than max_message" in header(props, "x-sidecar-error")
    log = plain(t.sidecar.log())
    assert "max size" not in log and "not accepted by the broker" not in log


# ---- names at the file system's limit ------------------------------------------------------

def test_file_in_longest_names_are_filed_without_a_retry_loop(broker, sidecar, uid, tmp_path):
    # A 255-byte name (NAME_MAX) leaves no room for ".error" beside it, nor for ".<hash>" when
    # the name is taken in done_dir: filing must shorten the name, not fail and retry forever
    # (a malformed file's DLQ copy was published again on every attempt).
    r = Route(str(tmp_path), uid, "long", "jsonl")
    t = FileIn(broker, sidecar, uid, [r])

    def drop(name, content):
        tmp = os.path.join(r.dir, ".part")
        with open(tmp, "wb") as f:
            f.write(content)
        os.rename(tmp, os.path.join(r.dir, name))

    bad_name = "b" * 249 + ".jsonl"
    bad = b'{"a":1}\n{"b":\n'
    drop(bad_name, bad)
    keep = f"{bad_name[:232]}.{file_prefix(bad)[:16]}"
    assert len(keep) + len(".error") == 255
    wait_for(lambda: keep in listing(r.failed) and f"{keep}.error" in listing(r.failed), 20,
             what="the malformed file in failed_dir under a shortened name")
    error = open(os.path.join(r.failed, keep + ".error")).read()
    assert f"file: {bad_name}\n" in error  # the real name is kept in the .error

    good_name = "g" * 249 + ".jsonl"
    first, second = b'{"n":1}\n', b'{"n":2}\n'
    drop(good_name, first)
    r.wait_done(good_name)
    drop(good_name, second)  # the name is taken in done_dir now
    again = f"{good_name[:238]}.{file_prefix(second)[:16]}"
    r.wait_done(again)
    with open(os.path.join(r.done, again), "rb") as f:
        assert f.read() == second
    settle(2.0)  # a retry loop would publish the DLQ copy again and again
    assert broker.count(r.dlq) == 1
    assert broker.count(r.queue) == 2
    assert listing(r.processing) == []


# ---- when a file counts ----------------------------------------------------------------

def test_file_in_slow_writer_is_never_published_half_written(broker, sidecar, uid, tmp_path):
    r = Route(str(tmp_path), uid, "slow", "jsonl")
    t = FileIn(broker, sidecar, uid, [r])  # settle_ms = 300
    lines = [json.dumps({"n": i, "pad": "y" * 50}).encode() + b"\n" for i in range(40)]
    content = b"".join(lines)
    path = os.path.join(r.dir, "slow.jsonl")
    with open(path, "wb") as f:
        for i in range(0, len(content), 97):  # cuts lines in the middle, on purpose
            f.write(content[i:i + 97])
            f.flush()
            settle(0.1)  # well under settle_ms between writes
            assert "slow.jsonl" in listing(r.dir), "claimed while still being written"
    r.wait_done("slow.jsonl")
    msgs = t.messages(r)
    assert bodies(msgs) == [line.decode().rstrip("\n") for line in lines]
    assert [p.message_id for p, _ in msgs] == [expected_id(content, i) for i in range(40)]
    assert listing(r.failed) == [] and broker.count(r.dlq) == 0


def test_file_in_renamed_in_counts_at_once_written_in_place_waits(broker, sidecar, uid,
                                                                  tmp_path):
    r = Route(str(tmp_path), uid, "lazy", "raw", extra="settle_ms = 4000;")
    t = FileIn(broker, sidecar, uid, [r])
    r.write_in_place("inplace.bin", b"in place")
    r.drop("renamed.bin", b"renamed")
    r.wait_done("renamed.bin", timeout=3)  # long before settle_ms
    assert "inplace.bin" in listing(r.dir)  # still settling
    r.wait_done("inplace.bin", timeout=15)
    assert sorted(bodies(t.messages(r))) == ["in place", "renamed"]


def test_file_in_not_ready_until_dir_exists(broker, sidecar, uid, tmp_path):
    r = Route(str(tmp_path), uid, "late", "jsonl")
    os.rmdir(r.dir)
    t = FileIn(broker, sidecar, uid, [r], start=False)
    s = t.start(ready=False)

    def detail():
        answer = s.readyz()
        if answer is None or answer.status_code != 503:
            return None
        return answer.json()["routes"]["late"].get("detail", "")

    # once the broker is connected, the missing directory is what keeps it unready
    assert "not accessible" in wait_for(lambda: "not accessible" in (detail() or "") and detail(),
                                        10, what="readyz naming the directory")
    assert s.readyz().status_code == 503
    os.makedirs(r.dir)
    s.wait_ready()
    r.drop("x.jsonl", b'{"late":true}\n')
    r.wait_done("x.jsonl", timeout=10)  # found by the scan (the watch is added late)
    assert bodies(t.messages(r)) == ['{"late":true}']


# ---- a writer that pauses, a file that changes after the claim ---------------------------

def wait_filed(r, name, timeout=30):
    """Waits until name is in done_dir or failed_dir; returns which."""
    return wait_for(lambda: ("done" if name in listing(r.done) else
                             "failed" if name in listing(r.failed) else None),
                    timeout, what=f"{name} filed")


PAUSED = {
    "jsonl-at-line-end": ("jsonl", 12),
    "jsonl-mid-line": ("jsonl", None),
    "csv-at-line-end": ("csv", 12),
}


@pytest.mark.parametrize("case", list(PAUSED))
def test_file_in_writer_pausing_longer_than_settle_ms_loses_nothing(broker, sidecar, uid,
                                                                    tmp_path, case):
    # The writer keeps its file open and pauses for 5 x settle_ms half way: the sidecar must
    # not take the half it sees (it did: published it, filed it, and the rest went unseen).
    fmt, cut_line = PAUSED[case]
    r = Route(str(tmp_path), uid, "pause", fmt, extra="settle_ms = 200;")
    t = FileIn(broker, sidecar, uid, [r])
    if fmt == "csv":
        content = csv_bytes(["id", "name", "amount"], [[str(i), f"n{i}", f"{i}.50"]
                                                        for i in range(30)])
        expected = csv_expected(content)
    else:
        lines = [json.dumps({"n": i, "pad": "z" * 20}).encode() + b"\n" for i in range(30)]
        content = b"".join(lines)
        expected = [line.decode().rstrip("\n") for line in lines]
    if cut_line is None:
        cut = len(content) // 2 + 3  # inside a line: what is there is not even valid
    else:
        cut = sum(len(line) + 1 for line in content.split(b"\n")[:cut_line])
    name = f"paused.{fmt}"
    with open(os.path.join(r.dir, name), "wb") as f:
        f.write(content[:cut])
        f.flush()
        settle(1.0)  # the pause: 5 x settle_ms
        f.write(content[cut:])
    assert wait_filed(r, name) == "done", listing(r.failed)
    msgs = t.messages(r)
    assert bodies(msgs) == expected  # every record, once, in order
    assert [p.message_id for p, _ in msgs] == [expected_id(content, i)
                                               for i in range(len(expected))]
    with open(os.path.join(r.done, name), "rb") as f:
        assert f.read() == content
    assert listing(r.failed) == [] and broker.count(r.dlq) == 0
    assert listing(r.processing) == []


def test_file_in_file_growing_while_it_streams_is_put_back_and_published_whole(
        broker, sidecar, uid, tmp_path):
    # A writer the sidecar could not see (it opened the file before the sidecar started, as
    # on a network file system) appends while the file is being published: nothing beyond
    # what was checked is published, the file goes back to settle, and once it is stable it
    # is published in full; it is filed complete.
    r = Route(str(tmp_path), uid, "grow", "jsonl", extra="settle_ms = 200; max_inflight = 1;")
    t = FileIn(broker, sidecar, uid, [r], start=False)
    lines = [json.dumps({"n": i, "pad": "g" * 30}).encode() + b"\n" for i in range(3000)]
    more = [json.dumps({"n": i, "more": True}).encode() + b"\n" for i in range(3000, 3020)]
    first, full = b"".join(lines), b"".join(lines + more)
    name = "grow.jsonl"
    with open(os.path.join(r.dir, name), "wb") as f:
        f.write(first)
        f.flush()
        t.start()
        wait_count(broker, r.queue, 100, timeout=30)
        assert name in listing(r.processing), "should be mid-file"
        f.write(b"".join(more))
    r.wait_done(name, timeout=90)
    with open(os.path.join(r.done, name), "rb") as f:
        assert f.read() == full
    checked = {expected_id(first, i): line for i, line in enumerate(lines)}
    final = {expected_id(full, i): line for i, line in enumerate(lines + more)}
    seen = set()
    for props, body in t.messages(r):
        # every message is a record of a version that was checked, under that version's id
        want = final.get(props.message_id, checked.get(props.message_id))
        assert want is not None, f"published unchecked: {props.message_id} {body[:60]!r}"
        assert body == want.rstrip(b"\n")
        seen.add(props.message_id)
    assert set(final) <= seen, f"{len(set(final) - seen)} record(s) of the whole file missing"
    assert listing(r.failed) == [] and broker.count(r.dlq) == 0
    assert "changed" in plain(t.sidecar.log())


def test_file_in_file_growing_while_its_name_is_taken_again_settles_in_processing(
        broker, sidecar, uid, tmp_path):
    # As above, but by the time the grown file should go back, dir holds a new file of the
    # same name (a writer that reopened it by name): neither is lost, overwritten or split.
    r = Route(str(tmp_path), uid, "again", "jsonl", extra="settle_ms = 200; max_inflight = 1;")
    t = FileIn(broker, sidecar, uid, [r], start=False)
    lines = [json.dumps({"n": i, "pad": "a" * 30}).encode() + b"\n" for i in range(1500)]
    full = b"".join(lines) + b'{"tail":1}\n'
    second = b'{"second":1}\n{"second":2}\n'
    name = "again.jsonl"
    with open(os.path.join(r.dir, name), "wb") as f:
        f.write(b"".join(lines))
        f.flush()
        t.start()
        wait_count(broker, r.queue, 100, timeout=30)
        assert name in listing(r.processing), "should be mid-file"
        r.write_in_place(name, second)
        f.write(b'{"tail":1}\n')
    t.sidecar.wait_log("settles in .*processing instead")
    r.wait_done(name, timeout=90)
    taken = f"{name}.{file_prefix(second)[:16]}"
    r.wait_done(taken, timeout=30)
    for filed, content in [(name, full), (taken, second)]:
        with open(os.path.join(r.done, filed), "rb") as f:
            assert f.read() == content
    ids = {p.message_id for p, _ in t.messages(r)}
    assert {expected_id(full, i) for i in range(1501)} <= ids
    assert {expected_id(second, i) for i in range(2)} <= ids
    assert listing(r.processing) == [] and listing(r.failed) == []


# ---- crashes and outages ------------------------------------------------------------------

def big_csv(n):
    return csv_bytes(["id", "name", "amount", "note", "empty"], csv_rows(n, seed=3))


def assert_every_record(t, r, contents):
    """Every record of every file arrived (duplicates allowed), each body under its own id."""
    want = {}
    for content in contents:
        for i, body in enumerate(csv_expected(content)):
            want[expected_id(content, i)] = body
    got = {}
    for props, body in t.messages(r):
        assert want.get(props.message_id) == body.decode(), props.message_id
        got[props.message_id] = got.get(props.message_id, 0) + 1
    missing = set(want) - set(got)
    assert not missing, f"{len(missing)} record(s) never published"
    return sum(got.values()) - len(got)  # duplicates


def test_file_in_sigkill_mid_file_then_restart_publishes_all_same_ids(broker, sidecar, uid,
                                                                      tmp_path):
    r = Route(str(tmp_path), uid, "bulk", "csv", extra="max_inflight = 1;")  # slow: 1 at a time
    t = FileIn(broker, sidecar, uid, [r])
    content = big_csv(5000)
    r.drop("bulk.csv", content)
    wait_count(broker, r.queue, 200)
    sigkill(t.sidecar)
    published = broker.count(r.queue)
    assert 200 <= published < 5000, "the kill should land mid-file"
    assert listing(r.processing) == ["bulk.csv"] and listing(r.done) == []

    r.extra = "max_inflight = 512;"  # ids do not depend on it; the rerun is quick
    t.inbound = r.config()
    s = t.start()
    r.wait_done("bulk.csv", timeout=60)
    dups = assert_every_record(t, r, [content])
    assert dups >= published - 1  # the rerun started from the top, with the same ids
    assert listing(r.processing) == []
    assert "left in" in plain(s.log())


def test_file_in_broker_outage_mid_file_and_files_dropped_meanwhile(broker, sidecar, uid,
                                                                    tmp_path):
    r = Route(str(tmp_path), uid, "outage", "csv", extra="max_inflight = 1;")
    t = FileIn(broker, sidecar, uid, [r])
    first = big_csv(3000)
    r.drop("first.csv", first)
    wait_count(broker, r.queue, 100)
    broker.stop()
    try:
        later = [big_csv(50 + i) for i in range(3)]
        for i, content in enumerate(later):
            r.drop(f"later{i}.csv", content)
        settle(1.5)
        # nothing is lost or filed while the broker is away: the files wait where they are
        assert listing(r.done) == [] and listing(r.failed) == []
        assert listing(r.processing) == ["first.csv"]
        assert sorted(f for f in listing(r.dir) if f.endswith(".csv")) == \
            ["later0.csv", "later1.csv", "later2.csv"]
    finally:
        broker.start()
    for name in ["first.csv", "later0.csv", "later1.csv", "later2.csv"]:
        r.wait_done(name, timeout=90)
    assert_every_record(t, r, [first] + later)
    log = plain(t.sidecar.log())
    assert log.count("waiting for the broker") <= 3  # said once per outage, not per record
    assert "published again from the start with the same message ids" in log


def test_file_in_nacked_records_keep_the_file_until_all_are_accepted(broker, sidecar, uid,
                                                                      tmp_path):
    # A full queue with overflow = reject-publish makes the broker nack: the file must stay
    # claimed and be published again (same ids) until every record is confirmed.
    r = Route(str(tmp_path), uid, "nack", "jsonl",
              queue_args={"x-max-length": 15, "x-overflow": "reject-publish"})
    t = FileIn(broker, sidecar, uid, [r])
    first = b"".join(b'{"first":%d}\n' % i for i in range(10))
    second = b"".join(b'{"second":%d}\n' % i for i in range(10))
    r.drop("first.jsonl", first)
    r.wait_done("first.jsonl")
    r.drop("second.jsonl", second)  # only 5 fit: the other 5 are nacked
    t.sidecar.wait_log("second.jsonl.*not accepted by the broker")
    assert listing(r.processing) == ["second.jsonl"] and "second.jsonl" not in listing(r.done)
    got = t.messages(r)  # makes room; the next attempt gets everything in
    r.wait_done("second.jsonl", timeout=20)
    got += t.messages(r)
    ids = {p.message_id for p, _ in got}
    assert {expected_id(first, i) for i in range(10)} <= ids
    assert {expected_id(second, i) for i in range(10)} <= ids
    assert "nack" in plain(t.sidecar.log())


def test_file_in_done_dir_trouble_does_not_republish(broker, sidecar, uid, tmp_path):
    r = Route(str(tmp_path), uid, "stuck", "jsonl")
    os.makedirs(os.path.dirname(r.done), exist_ok=True)
    with open(r.done, "w") as f:  # done_dir is a plain file: filing fails, even for root
        f.write("not a directory")
    t = FileIn(broker, sidecar, uid, [r])
    content = b'{"a":1}\n{"a":2}\n'
    r.drop("x.jsonl", content)
    t.sidecar.wait_log("every record is confirmed, but moving it failed")
    settle(4.0)  # back-off rounds (0.5, 1, 2 s): only filing is retried, nothing is republished
    assert broker.count(r.queue) == 2
    assert listing(r.processing) == ["x.jsonl"]
    r.drop("y.jsonl", b'{"b":1}\n')  # a stuck file does not hold up the next one
    wait_count(broker, r.queue, 3, timeout=2)
    os.remove(r.done)
    r.wait_done("x.jsonl", timeout=20)
    r.wait_done("y.jsonl", timeout=20)
    assert broker.count(r.queue) == 3


def test_file_in_failed_dir_trouble_does_not_republish_the_dead_letter(broker, sidecar, uid,
                                                                       tmp_path):
    r = Route(str(tmp_path), uid, "stuckbad", "jsonl")
    os.makedirs(os.path.dirname(r.failed), exist_ok=True)
    with open(r.failed, "w") as f:  # failed_dir is a plain file: filing fails, even for root
        f.write("not a directory")
    t = FileIn(broker, sidecar, uid, [r])
    r.drop("bad.jsonl", b'{"a":1}\n{"a":\n')
    t.sidecar.wait_log("is malformed .* but filing it in failed_dir")
    settle(4.0)  # back-off rounds: only filing is retried, the DLQ copy is not sent again
    assert broker.count(r.dlq) == 1
    assert listing(r.processing) == ["bad.jsonl"]
    r.drop("good.jsonl", b'{"b":1}\n')  # a stuck file does not hold up the next one
    r.wait_done("good.jsonl", timeout=5)
    os.remove(r.failed)
    r.wait_failed("bad.jsonl", timeout=20)
    assert "line 2" in open(os.path.join(r.failed, "bad.jsonl.error")).read()
    assert broker.count(r.dlq) == 1 and broker.count(r.queue) == 1


def test_file_in_sigterm_finishes_the_current_file(broker, sidecar, uid, tmp_path):
    r = Route(str(tmp_path), uid, "term", "csv", extra="max_inflight = 1;")
    t = FileIn(broker, sidecar, uid, [r])
    content = big_csv(1000)
    r.drop("term.csv", content)
    wait_count(broker, r.queue, 50)
    r.drop("after.csv", big_csv(10))
    assert t.sidecar.stop() == 0
    assert listing(r.done) == ["term.csv"]  # finished, not abandoned
    assert "after.csv" in listing(r.dir)  # not started while draining
    assert_every_record(t, r, [content])


# ---- config ----------------------------------------------------------------------------

@pytest.mark.parametrize("route,message", [
    ('format = "raw"; split = true;', "split applies to format json"),
    ('format = "xml"; transform = "{jq}";', "a transform needs JSON records"),
    ('format = "csv"; delimiter = "ab";', "must be one character"),
    ('format = "raw"; routing_key = "x.{json.id}";', "unknown placeholder {json.id}"),
    ('format = "csv"; routing_key = "x.{nope}";', "unknown placeholder {nope}"),
    ('format = "csv"; done_dir = "{dir}/";', "done_dir must not be dir itself"),
    ('format = "csv"; pattern = "a/*.csv";', "without '/'"),
    ('format = "tsv";', "is not one of"),
    ('format = "raw"; content_type = "pdf";', 'content_type "pdf" is not type/subtype'),
    ('format = "raw"; content_type = "application/' + "x" * 300 + '";',
     "is 312 bytes; AMQP allows 1 to 255"),
], ids=["split-raw", "transform-xml", "delimiter", "json-key-raw", "unknown-key", "done-is-dir",
        "pattern-slash", "format", "content-type-shape", "content-type-long"])
def test_file_in_config_errors(broker, tmp_path, route, message):
    jq = tmp_path / "t.jq"
    jq.write_text(".")
    d = tmp_path / "drop"
    d.mkdir()
    text = (f'name = "c"; broker = {{ url = "{broker.url}"; }};\n'
            f'inbound = ( {{ name = "f"; kind = "file"; dir = "{d}"; exchange = "x"; '
            + route.replace("{jq}", str(jq)).replace("{dir}", str(d)) + " } );\n")
    path = tmp_path / "c.conf"
    path.write_text(text)
    r = run_cli("check", "-c", str(path))
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in plain(r.stderr + r.stdout)
    assert f"{path}:" in r.stderr + r.stdout


def test_file_in_two_routes_on_one_dir_refused(broker, tmp_path):
    d = tmp_path / "drop"
    d.mkdir()
    route = '{ name = "%s"; kind = "file"; dir = "%s"; exchange = "x"; }'
    path = tmp_path / "c.conf"
    path.write_text(f'name = "c"; broker = {{ url = "{broker.url}"; }};\n'
                    f'inbound = ( {route % ("a", d)}, {route % ("b", str(d) + "/")} );\n')
    r = run_cli("check", "-c", str(path))
    assert r.returncode == 2 and "already watched by route" in plain(r.stderr + r.stdout)
