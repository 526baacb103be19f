"""File outbound (AMQP → files): complete files only (temp name, fsync,
rename, then ack), names from message data that cannot leave the directory,
idempotent redeliveries, and write failures that retry, then dead-letter —
never an ack for an unwritten file, never a temp file left behind."""
import json
import os
import shutil
import stat

import pika
import pytest

from conftest import plain, run_cli, wait_for
from file_helpers import header, limited_sidecar, listing

RETRY = "retry = { delays = [0.2, 0.4]; };"


class FileOut:
    """A sidecar with one file outbound route writing into tmp_path/out."""

    def __init__(self, broker, sidecar, uid, tmp_path, route_extra="", start=True, retry=RETRY):
        self.broker = broker
        self.dir = str(tmp_path / "out")
        os.makedirs(self.dir, exist_ok=True)
        self.queue = f"{uid}.files"
        self.dlq = f"{self.queue}.dlq"
        self.route = (f'{{ name = "writer"; kind = "file"; queue = "{self.queue}"; '
                      f'dir = "{self.dir}"; {retry} {route_extra} }}')
        self.sidecar = sidecar(name=uid, outbound=self.route) if start else None

    def send(self, body, message_id=None, headers=None, **props):
        if message_id is not None:
            props["message_id"] = message_id
        self.broker.publish("", self.queue, body, headers=headers, **props)

    def files(self):
        """Everything in the directory, temp files included."""
        return listing(self.dir)

    def visible(self):
        return [f for f in self.files() if not f.startswith(".")]

    def read(self, name):
        with open(os.path.join(self.dir, name), "rb") as f:
            return f.read()

    def wait_files(self, n, timeout=20):
        return wait_for(lambda: len(self.visible()) >= n, timeout, what=f"{n} file(s)")

    def dead(self):
        return self.broker.get_all(self.dlq)


def test_file_out_many_messages_complete_files(broker, sidecar, uid, tmp_path):
    t = FileOut(broker, sidecar, uid, tmp_path, 'filename = "{message_id}.json";')
    sent = {}
    with broker.channel() as ch:
        ch.confirm_delivery()
        for i in range(300):
            body = json.dumps({"n": i, "pad": "z" * (i * 37 % 5000)}).encode()
            sent[f"msg-{i:04d}.json"] = body
            ch.basic_publish("", t.queue, body, pika.BasicProperties(
                delivery_mode=2, message_id=f"msg-{i:04d}"))
    t.wait_files(300)
    wait_for(lambda: broker.count(t.queue) == 0, 10, what="queue drained")
    assert t.files() == sorted(sent)  # no .tmp- file left, nothing else
    for name, body in sent.items():
        assert t.read(name) == body
        assert stat.S_IMODE(os.stat(os.path.join(t.dir, name)).st_mode) == 0o640
    assert broker.count(t.dlq) == 0


def test_file_out_name_placeholders_and_mode(broker, sidecar, uid, tmp_path):
    t = FileOut(broker, sidecar, uid, tmp_path,
                'filename = "{route}-{header.x-kind}-{correlation_id}-{timestamp}.txt"; '
                'mode = "0600";')
    t.send(b"hello", message_id="m1", correlation_id="c-9", headers={"x-kind": "order"},
           timestamp=1700000000)
    t.wait_files(1)
    [name] = t.visible()
    assert name == "writer-order-c-9-20231114T221320Z.txt"
    assert t.read(name) == b"hello"
    assert stat.S_IMODE(os.stat(os.path.join(t.dir, name)).st_mode) == 0o600


@pytest.mark.parametrize("portable, expected", [
    (None, "order%20A%3A1%2A%3F%25.txt"),   # the default: what Windows and SMB readers take
    ("false", "order A:1*?%.txt"),
])
def test_file_out_names_are_portable_unless_asked(broker, sidecar, uid, tmp_path, portable,
                                                  expected):
    extra = f"portable_names = {portable};" if portable else ""
    t = FileOut(broker, sidecar, uid, tmp_path, f'filename = "{{message_id}}.txt"; {extra}')
    t.send(b"one", message_id="order A:1*?%")
    t.send(b"two", message_id="order%20A%3A1%2A%3F%25")  # its encoded twin stays distinct
    t.wait_files(2)
    assert sorted(t.visible()) == sorted([expected, "order%2520A%253A1%252A%253F%2525.txt"]
                                         if portable is None else
                                         [expected, "order%20A%3A1%2A%3F%25.txt"])
    assert t.read(expected) == b"one"


@pytest.mark.parametrize("message_id,name_header,reason", [
    ("../x", None, "path separator"),
    ("/etc/x", None, "path separator"),
    (".hidden", None, "starts with '.'"),
    ("..", None, "starts with '.'"),
    ("ok-id", "../../etc/passwd", "path separator"),
    ("ok-id", "sub/dir", "path separator"),
    ("ok-id", "back\\slash", "path separator"),
    ("ok-id", "bell\x07", "control character"),
    ("ok-id", "n" * 256, "longer than 255 bytes"),
    ("ok-id", "", "it is empty"),
], ids=["dotdot", "absolute", "hidden", "dotdot-only", "header-traversal", "header-slash",
        "backslash", "control", "too-long", "empty"])
def test_file_out_unsafe_names_dead_lettered(broker, sidecar, uid, tmp_path, message_id,
                                             name_header, reason):
    template = "{header.x-name}" if name_header is not None else "{message_id}"
    t = FileOut(broker, sidecar, uid, tmp_path, f'filename = "{template}";')
    headers = {"x-name": name_header} if name_header is not None else None
    t.send(b"payload", message_id=message_id, headers=headers)
    [(props, body)] = wait_for(lambda: t.dead(), 10, what="a dead letter")
    assert body == b"payload" and props.message_id == message_id
    error = header(props, "x-sidecar-error")
    assert "unsafe file name" in error and reason in error
    assert header(props, "x-sidecar-attempts") == 0  # refused before any write
    assert t.files() == []
    assert not os.path.exists(tmp_path / "x") and not os.path.exists("/etc/x")


def test_file_out_missing_placeholder_dead_lettered(broker, sidecar, uid, tmp_path):
    t = FileOut(broker, sidecar, uid, tmp_path, 'filename = "{header.x-name}.txt";')
    t.send(b"no header", message_id="m")
    [(props, _)] = wait_for(lambda: t.dead(), 10, what="a dead letter")
    assert "placeholder {header.x-name} has no value" in header(props, "x-sidecar-error")
    assert t.files() == []


def test_file_out_duplicate_is_idempotent_conflict_is_dead(broker, sidecar, uid, tmp_path):
    t = FileOut(broker, sidecar, uid, tmp_path)  # filename = "{message_id}", overwrite false
    t.send(b"first", message_id="order-1")
    t.wait_files(1)
    t.send(b"first", message_id="order-1")  # a redelivery: same name, same content
    t.send(b"changed", message_id="order-1")  # same name, different content
    t.send(b"other", message_id="order-2")
    [(props, body)] = wait_for(lambda: t.dead(), 10, what="the conflict dead-lettered")
    assert body == b"changed"
    assert "already exists" in header(props, "x-sidecar-error")
    assert "different content" in header(props, "x-sidecar-error")
    wait_for(lambda: len(t.visible()) == 2, 10, what="order-2")
    assert t.read("order-1") == b"first" and t.read("order-2") == b"other"
    assert broker.count(t.queue) == 0


def test_file_out_overwrite_replaces(broker, sidecar, uid, tmp_path):
    t = FileOut(broker, sidecar, uid, tmp_path, 'filename = "latest.json"; overwrite = true;')
    for i in range(5):
        t.send(json.dumps({"v": i}).encode(), message_id=f"m{i}")
    wait_for(lambda: t.files() == ["latest.json"] and t.read("latest.json") == b'{"v": 4}', 10,
             what="the last version in place")
    wait_for(lambda: broker.count(t.queue) == 0, 10, what="queue drained")
    assert broker.count(t.dlq) == 0


def test_file_out_transform(broker, sidecar, uid, tmp_path):
    jq = tmp_path / "t.jq"
    jq.write_text("{id: .order.id, total: (.order.lines | map(.qty) | add)}")
    t = FileOut(broker, sidecar, uid, tmp_path, f'transform = "{jq}";')
    t.send(b'{"order": {"id": "A-1", "lines": [{"qty": 2}, {"qty": 3}]}}', message_id="a1")
    t.send(b"not json", message_id="a2")
    t.wait_files(1)
    assert t.read("a1") == b'{"id":"A-1","total":5}'
    [(props, _)] = wait_for(lambda: t.dead(), 10, what="the transform failure")
    assert props.message_id == "a2" and "transform failed" in header(props, "x-sidecar-error")
    assert t.files() == ["a1"]


def test_file_out_dir_replaced_by_a_file_retries_then_recovers_or_dead_letters(
        broker, sidecar, uid, tmp_path):
    # Root ignores permissions, so a directory that cannot be written is made by replacing it
    # with a plain file: every create fails with ENOTDIR, for root too.
    t = FileOut(broker, sidecar, uid, tmp_path, retry="retry = { delays = [0.3, 0.3, 3.0]; };")
    os.rmdir(t.dir)
    with open(t.dir, "w") as f:
        f.write("I am not a directory")
    t.send(b"will wait", message_id="w1")
    wait_for(lambda: "attempt 2 failed" in t.sidecar.log(), 10, what="two failed attempts")
    os.remove(t.dir)
    os.makedirs(t.dir)  # fixed during the last (3 s) retry delay
    wait_for(lambda: t.files() == ["w1"], 10, what="the file written after the fix")
    assert t.read("w1") == b"will wait"
    assert broker.count(t.dlq) == 0

    shutil.rmtree(t.dir)
    with open(t.dir, "w") as f:
        f.write("broken again")
    t.send(b"gives up", message_id="w2")
    [(props, body)] = wait_for(lambda: t.dead(), 20, what="a dead letter after the ladder")
    assert body == b"gives up"
    assert header(props, "x-sidecar-attempts") == 4  # the first try and three retries
    assert "Not a directory" in header(props, "x-sidecar-error")
    assert "gave up after 4 attempts" in header(props, "x-sidecar-error")


def test_file_out_file_size_limit_dead_letters_and_leaves_no_temp(broker, uid, tmp_path):
    # RLIMIT_FSIZE makes writes past 256 KiB fail with EFBIG — a real write failure after a
    # partial write, for root as well, with no mount needed.
    out = tmp_path / "out"
    out.mkdir()
    queue = f"{uid}.files"
    route = (f'{{ name = "writer"; kind = "file"; queue = "{queue}"; dir = "{out}"; {RETRY} }}')
    with limited_sidecar(broker, tmp_path, uid, route, fsize=256 * 1024) as s:
        broker.publish("", queue, b"s" * 1000, message_id="small")
        broker.publish("", queue, b"B" * (1024 * 1024), message_id="big")
        [(props, body)] = wait_for(lambda: broker.get_all(f"{queue}.dlq"), 20,
                                   what="the big message dead-lettered")
        assert props.message_id == "big" and len(body) == 1024 * 1024
        assert "File too large" in header(props, "x-sidecar-error")
        assert header(props, "x-sidecar-attempts") == 3
        assert listing(out) == ["small"]  # no .tmp- file left behind by the failed writes
        assert (out / "small").read_bytes() == b"s" * 1000
        assert s.proc.poll() is None  # SIGXFSZ did not kill it


def test_file_out_not_ready_while_dir_missing(broker, sidecar, uid, tmp_path):
    t = FileOut(broker, sidecar, uid, tmp_path, start=False)
    os.rmdir(t.dir)
    s = sidecar(name=uid, outbound=t.route, ready=False)

    def detail():
        answer = s.readyz()
        if answer is None or answer.status_code != 503:
            return ""
        return answer.json()["routes"]["writer"].get("detail", "")

    wait_for(lambda: "not writable" in detail(), 10, what="readyz naming the directory")
    os.makedirs(t.dir)
    s.wait_ready()


@pytest.mark.parametrize("route,message", [
    ('filename = "a/{message_id}";', "must name a file directly in dir"),
    ('filename = ".{message_id}";', "no leading '.'"),
    ('filename = "{body}";', "unknown placeholder {body}"),
    ('mode = "rw-r";', "is not an octal file mode"),
])
def test_file_out_config_errors(broker, tmp_path, route, message):
    path = tmp_path / "c.conf"
    path.write_text(f'name = "c"; broker = {{ url = "{broker.url}"; }};\n'
                    f'outbound = ( {{ name = "w"; kind = "file"; dir = "{tmp_path}"; {route} }} );\n')
    r = run_cli("check", "-c", str(path))
    assert r.returncode == 2 and message in plain(r.stderr + r.stdout)
