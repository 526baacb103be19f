"""`amqp-sidecar systemd-dropin -c FILE`: the [Service] drop-in the hardened unit
(packaging/systemd/amqp-sidecar@.service) needs for FILE's routes, checked on the
shipped examples and, when systemd-analyze is there, accepted by `systemd-analyze
verify` together with the unit."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import run_cli, sidecar_bin

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CONFIGS = os.path.join(REPO, "configs")
UNIT = os.path.join(REPO, "packaging", "systemd", "amqp-sidecar@.service")


def directives(text, name):
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(name + "=")]


def dropin(path):
    r = run_cli("systemd-dropin", "-c", path)
    assert r.returncode == 0, r.stderr
    assert "[Service]" in r.stdout
    return r


def test_file_in_example_lists_every_directory_once():
    r = dropin(os.path.join(CONFIGS, "file-in.conf"))
    # orders and scans keep failed_dir's default, <dir>/.failed: covered by dir.
    assert directives(r.stdout, "ReadWritePaths") == [
        "/var/spool/erp/out", "/var/spool/erp/done", "/var/spool/erp/failed",
        "/var/spool/erp/orders", "/var/spool/erp/scans"]
    assert re.search(r'# inbound route "invoices": done_dir \(.*file-in\.conf:31\)', r.stdout)
    assert '# inbound route "orders": failed_dir (the default)' in r.stdout
    # the header says how to install it
    assert "/etc/systemd/system/amqp-sidecar@file-in.service.d/paths.conf" in r.stdout
    assert "systemctl daemon-reload" in r.stdout
    assert directives(r.stdout, "ReadOnlyPaths") == []  # files only read are readable as is


def test_file_out_and_non_file_examples():
    r = dropin(os.path.join(CONFIGS, "file-out.conf"))
    assert directives(r.stdout, "ReadWritePaths") == ["/var/spool/mainframe/in"]
    for name in ("http-in.conf", "http-out.conf", "soap.conf"):
        r = dropin(os.path.join(CONFIGS, name))
        assert directives(r.stdout, "ReadWritePaths") == [], name


def test_state_dir_home_tmp_and_quoting(tmp_path):
    conf = tmp_path / "crm.conf"
    conf.write_text('''
name = "crm";
broker = { url = "amqp://guest:guest@127.0.0.1:5672/%2f"; };
state_dir = "/var/lib/amqp-sidecar/crm";
inbound = (
  { name = "t"; kind = "poll"; url = "http://h/x"; id = ".id"; exchange = "e"; },
  { name = "f"; kind = "file"; dir = "/srv/crm/in box%1"; done_dir = "/home/crm/done";
    exchange = "e"; },
  { name = "g"; kind = "file"; dir = "/tmp/crm-in"; exchange = "e"; }
);
''')
    r = dropin(str(conf))
    out = r.stdout
    # state_dir is the unit's StateDirectory= for amqp-sidecar@crm: nothing to add
    assert "/var/lib/amqp-sidecar/crm is the unit's StateDirectory=" in out
    assert directives(out, "ReadWritePaths") == ['"/srv/crm/in box%%1"']
    assert directives(out, "ProtectHome") == ["tmpfs"]
    assert directives(out, "BindPaths") == ["/home/crm/done"]
    assert "WARNING: /tmp/crm-in is in /tmp or /var/tmp" in out
    assert "private /tmp" in r.stderr

    other = tmp_path / "other.conf"  # another instance: its state_dir is not the unit's
    other.write_text(conf.read_text().replace('"/tmp/crm-in"', '"/srv/x"'))
    assert "/var/lib/amqp-sidecar/crm" in directives(dropin(str(other)).stdout, "ReadWritePaths")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_accepts_the_unit_with_the_dropin(tmp_path):
    for name in ("file-in", "file-out", "demo"):
        units = tmp_path / name
        units.mkdir()
        unit = units / f"amqp-sidecar@{name}.service"
        unit.write_text(open(UNIT).read().replace("/usr/bin/amqp-sidecar", sidecar_bin()))
        d = units / f"amqp-sidecar@{name}.service.d"
        d.mkdir()
        (d / "paths.conf").write_text(dropin(os.path.join(CONFIGS, f"{name}.conf")).stdout)
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"})
        assert r.returncode == 0, r.stderr
        assert "paths.conf" not in r.stderr, r.stderr  # every line of it was understood
