"""`check --user NAME`: every directory and file a route needs, checked as that
user (a throwaway one made here), each problem with its file:line and fix; and
`check` run by root warns that root sees every file."""
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid

import pytest

from conftest import run_cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None,
                                reason="needs root and useradd")


@pytest.fixture
def user():
    name = "sc" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    name], check=True)
    yield name
    subprocess.run(["userdel", name], check=False)


@pytest.fixture
def world():
    """A directory every user may reach (pytest's tmp_path is root's only)."""
    d = tempfile.mkdtemp(prefix="sidecar-check-user-", dir="/var/tmp")
    os.chmod(d, 0o755)
    yield __import__("pathlib").Path(d)
    shutil.rmtree(d, ignore_errors=True)


def line_of(text, needle):
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def write_config(tmp, body):
    conf = tmp / "crm.conf"
    conf.write_text('name = "crm";\n'
                    'broker = { url = "amqp://guest:guest@127.0.0.1:5672/%2f"; };\n' + body)
    return conf


def test_check_as_user_names_each_problem_with_its_fix(world, user):
    tmp_path = world
    base = tmp_path / "srv"
    ok, wrong, locked, closed = (base / d for d in ("ok", "wrong", "locked", "closed"))
    for d in (ok, wrong, locked, closed / "in"):
        d.mkdir(parents=True)
    os.chmod(base, 0o755)
    shutil.chown(ok, user, user)           # the user's own: fine
    os.chmod(wrong, 0o755)                 # root's, not writable by the user
    os.chmod(locked, 0o755)
    shutil.chown(locked, "root", user)     # the user's group, but no g+w
    os.chmod(closed, 0o700)                # a parent the user cannot search
    jq = tmp_path / "t.jq"
    jq.write_text(".\n")
    os.chmod(jq, 0o600)                    # root's only: the user cannot read it
    body = f'''inbound = (
  {{ name = "a"; kind = "file"; dir = "{ok}"; done_dir = "{ok}/done"; exchange = "e"; }},
  {{ name = "b"; kind = "file"; dir = "{wrong}"; exchange = "e"; format = "json";
     transform = "{jq}"; }},
  {{ name = "c"; kind = "file"; dir = "{locked}"; exchange = "e"; }},
  {{ name = "d"; kind = "file"; dir = "{closed}/in"; exchange = "e"; }}
);
'''
    conf = write_config(tmp_path, body)
    text = conf.read_text()
    r = run_cli("check", "-c", str(conf), "--user", user)
    assert r.returncode == 1, r.stdout + r.stderr
    err = r.stderr
    assert "warning: check runs as root" not in err
    assert (f'{conf}:{line_of(text, str(wrong))}: inbound route "b": dir: {user} cannot list '
            f'and write files in {wrong} (owner root:root, mode 0755); fix: chown {user}: {wrong}'
            ) in err
    assert (f'{conf}:{line_of(text, str(locked))}: inbound route "c": dir: {user} cannot list '
            f'and write files in {locked} (owner root:{user}, mode 0755); fix: chmod g+rwx '
            f'{locked}') in err
    assert (f'inbound route "d": dir: {user} cannot reach {closed}/in: {closed} (owner '
            f'root:root, mode 0700) is not searchable by {user}; fix: chmod o+x {closed}') in err
    assert (f'{conf}:{line_of(text, "transform")}: inbound route "b": transform: {user} cannot '
            f'read {jq} (owner root:root, mode 0600)') in err
    assert f'route "a"' not in err           # its own dir, and done_dir it may create
    # b, c and d also keep failed_dir's default, <dir>/.failed, which it cannot create
    assert f'{conf}: inbound route "c": failed_dir (the default): {locked}/.failed does not ' \
        f'exist and {user} cannot create it in {locked}' in err
    assert f"user {user}: 7 problems" in r.stdout

    # The fixes it names are enough.
    shutil.chown(wrong, user, user)
    os.chmod(locked, 0o775)
    os.chmod(closed, 0o711)
    os.chmod(jq, 0o644)
    r = run_cli("check", "-c", str(conf), "--user", user)
    # past the parent it could not search, d's own directory is root's: the next fix
    assert r.returncode == 1 and f"fix: chown {user}: {closed}/in" in r.stderr
    shutil.chown(closed / "in", user, user)
    r = run_cli("check", "-c", str(conf), "--user", user)
    assert r.returncode == 0, r.stderr
    assert f"user {user}: can use all" in r.stdout


def test_check_as_root_warns_and_unknown_user_is_named(tmp_path):
    conf = write_config(tmp_path, f'inbound = ({{ name = "a"; kind = "file"; dir = "{tmp_path}"; '
                                  'exchange = "e"; });\n')
    r = run_cli("check", "-c", str(conf))
    assert r.returncode == 0
    assert "warning: check runs as root" in r.stderr and "--user amqp-sidecar" in r.stderr
    r = run_cli("check", "-c", str(conf), "--user", "no-such-user-here")
    assert r.returncode == 2 and 'there is no user "no-such-user-here"' in r.stderr
    r = run_cli("topology", "-c", str(conf), "--user", "root")
    assert r.returncode == 2 and "--user goes with check" in r.stderr
