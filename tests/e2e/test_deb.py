"""The Debian package, end to end on this machine: build, lint, install, use, remove.

`packaging/build-deb.sh` (what `make deb` runs) builds the .deb from a copy of
the tree; lintian must report no error and no warning; `dpkg -i` installs it
here; the installed binary, man pages, system user, config directory and the
systemd template unit are checked; `dpkg -r` then `dpkg --purge` remove it,
and the system user the package keeps by design is deleted again if this
test created it, so the machine is left as it was.

Skips (with the reason) unless root with dpkg-buildpackage, debhelper and
fakeroot installed, and when amqp-sidecar is already installed here (this
test will not replace an operator's package). Takes about 15 s.
"""
import grp
import os
import pwd
import shutil
import stat
import subprocess

import pytest

from conftest import sandboxed_example

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PKG = "amqp-sidecar"
USER = "amqp-sidecar"


def run(*args, check=True, timeout=120, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def package_status():
    r = run("dpkg-query", "-W", "-f=${Status}", PKG, check=False)
    status = r.stdout.strip() if r.returncode == 0 else ""
    return "" if status.endswith("not-installed") else status


def user_exists():
    try:
        pwd.getpwnam(USER)
        return True
    except KeyError:
        return False


def group_exists():
    try:
        grp.getgrnam(USER)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="module")
def deb():
    if os.geteuid() != 0:
        pytest.skip("installs a package: needs root")
    for tool in ("dpkg-buildpackage", "dh", "fakeroot", "dpkg-architecture"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make deps installs dpkg-dev, debhelper, fakeroot)")
    status = package_status()
    if status:
        pytest.skip(f"{PKG} is already on this machine ({status}); not touching it")
    version = open(os.path.join(ROOT, "VERSION")).read().strip()
    arch = run("dpkg-architecture", "-qDEB_HOST_ARCH").stdout.strip()
    r = run(os.path.join(ROOT, "packaging", "build-deb.sh"), env=dict(os.environ, LINTIAN="0"),
            timeout=300)
    path = os.path.join(ROOT, "build", f"{PKG}_{version}_{arch}.deb")
    assert os.path.isfile(path), f"build-deb.sh did not leave {path}:\n{r.stdout}{r.stderr}"
    return {"path": path, "version": version}


@pytest.fixture(scope="module")
def installed(deb):
    """Installs the .deb for the tests of this module; removes every trace after."""
    had_user, had_group = user_exists(), group_exists()
    run("dpkg", "-i", deb["path"])
    try:
        yield deb
    finally:
        if package_status():
            run("dpkg", "--purge", PKG, check=False)
        if not had_user and user_exists():
            run("deluser", "--system", "--quiet", USER, check=False)
        if not had_group and group_exists():
            run("delgroup", "--system", "--quiet", USER, check=False)


def test_deb_contents_and_lintian(deb):
    """What the package holds, and lintian has nothing to say about it."""
    files = run("dpkg-deb", "-c", deb["path"]).stdout
    for want in ("./usr/bin/amqp-sidecar", "./lib/systemd/system/amqp-sidecar@.service",
                 "./usr/share/man/man8/amqp-sidecar.8.gz",
                 "./usr/share/man/man5/amqp-sidecar.conf.5.gz",
                 "./etc/amqp-sidecar/example.conf.sample",
                 "./usr/share/doc/amqp-sidecar/copyright",
                 "./usr/share/amqp-sidecar/monitoring/amqp-sidecar.rules.yml",
                 "./usr/share/amqp-sidecar/monitoring/amqp-sidecar.dashboard.json"):
        assert want in files, f"{want} missing from the package:\n{files}"
    configs = [f for f in os.listdir(os.path.join(ROOT, "configs"))
               if not f.startswith(".")] if os.path.isdir(os.path.join(ROOT, "configs")) else []
    for name in configs:
        assert f"./usr/share/doc/amqp-sidecar/examples/{name}" in files, f"example {name} missing"
    control = run("dpkg-deb", "-f", deb["path"], "Version", "Depends").stdout
    assert f"Version: {deb['version']}" in control
    assert "adduser" in control and "librabbitmq4" in control and "libjq1" in control, control
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed")
    r = run("lintian", "--info", deb["path"], check=False, timeout=300)
    tags = [line for line in r.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert not tags, "lintian:\n" + r.stdout


def test_deb_installs_binary_user_and_config_dir(installed):
    r = run("/usr/bin/amqp-sidecar", "--version")
    assert r.stdout.strip() == f"amqp-sidecar {installed['version']}"
    user = pwd.getpwnam(USER)
    assert user.pw_uid < 1000, "not a system user"
    assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false"), user.pw_shell
    assert grp.getgrgid(user.pw_gid).gr_name == USER
    st = os.stat("/etc/amqp-sidecar")
    assert stat.S_IMODE(st.st_mode) == 0o750, oct(st.st_mode)
    assert st.st_uid == 0 and grp.getgrgid(st.st_gid).gr_name == USER
    assert "/etc/amqp-sidecar/example.conf.sample" in run(
        "dpkg-query", "--control-show", PKG, "conffiles").stdout


def test_deb_shipped_configs_check(installed, tmp_path):
    """The sample passes check as the service user (as ExecStartPre runs it); every
    installed example passes the installed binary's check once the directories and
    secret files it names exist."""
    r = run("runuser", "-u", USER, "--", "/usr/bin/amqp-sidecar", "check", "-c",
            "/etc/amqp-sidecar/example.conf.sample", check=False)
    assert r.returncode == 0, r.stderr
    assert "ok, 1 route" in r.stdout
    examples = "/usr/share/doc/amqp-sidecar/examples"
    confs = sorted(f for f in os.listdir(examples) if f.endswith(".conf")) \
        if os.path.isdir(examples) else []
    for name in confs:
        conf = sandboxed_example(examples, name, tmp_path / name)
        r = run("/usr/bin/amqp-sidecar", "check", "-c", conf, check=False)
        assert r.returncode == 0, f"shipped example {name} fails check:\n{r.stderr}"


def test_deb_man_pages(installed):
    """Both pages are found by man, render without warnings, and conf(5) lists every key."""
    for section, page in (("8", "amqp-sidecar"), ("5", "amqp-sidecar.conf")):
        path = run("man", "-w", section, page).stdout.strip()
        r = run("man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", path,
                env=dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80"))
        assert r.stderr == "", f"{page}({section}) has troff warnings:\n{r.stderr}"
    text = run("man", "5", "amqp-sidecar.conf", env=dict(os.environ, MANWIDTH="200")).stdout
    keys = run("/usr/bin/amqp-sidecar", "keys", "--markdown").stdout
    names = [line.split("`")[1] for line in keys.splitlines() if line.startswith("| `")]
    assert names, keys
    missing = [n for n in names if n not in text]
    assert not missing, f"amqp-sidecar.conf(5) lacks keys {missing}"


def test_deb_systemd_unit_verifies(installed):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = "/lib/systemd/system/amqp-sidecar@.service"
    text = open(unit).read()
    for want in ("ExecStartPre=/usr/bin/amqp-sidecar check -c /etc/amqp-sidecar/%i.conf",
                 "ExecStart=/usr/bin/amqp-sidecar run -c /etc/amqp-sidecar/%i.conf",
                 "Type=notify", "User=amqp-sidecar", "StateDirectory=amqp-sidecar/%i"):
        assert want in text, want
    # verify exits 0 on parse warnings: an empty stderr is the real check.
    for what in (unit, "amqp-sidecar@example.service"):
        r = run("systemd-analyze", "verify", what, check=False)
        assert r.returncode == 0 and r.stderr.strip() == "", \
            f"systemd-analyze verify {what}:\n{r.stderr}"


def test_deb_remove_keeps_user_purge_removes_config(installed):
    """Runs last in this module: dpkg -r, then --purge (the fixture then drops the user)."""
    run("dpkg", "-r", PKG)
    assert not os.path.exists("/usr/bin/amqp-sidecar")
    assert not os.path.exists("/lib/systemd/system/amqp-sidecar@.service")
    assert user_exists(), "the system user must survive removal (see postinst)"
    assert os.path.exists("/etc/amqp-sidecar/example.conf.sample"), "conffile kept until purge"
    run("dpkg", "--purge", PKG)
    assert package_status() == ""
    assert not os.path.exists("/etc/amqp-sidecar")
