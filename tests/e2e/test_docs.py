"""The README's generated parts (config reference, XML⇄JSON convention) match
the code, and every example config passes `check`."""
import glob
import os
import re
import shutil
import subprocess

from conftest import ROOT, run_cli, sidecar_bin


def test_readme_is_current():
    r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "update-docs.py"), "--check"],
                       capture_output=True, text=True, env=dict(os.environ, SIDECAR_BIN=sidecar_bin()))
    assert r.returncode == 0, r.stderr + r.stdout


def test_readme_names_the_two_commands():
    text = open(os.path.join(ROOT, "README.md")).read()
    assert "make demo" in text and "make test" in text


def test_example_configs_pass_check(tmp_path):
    """Each configs/*.conf is valid as shipped, once the directories and secret
    files it names exist (they are the operator's, so the test creates them)."""
    confs = sorted(glob.glob(os.path.join(ROOT, "configs", "*.conf")))
    assert confs, "no example configs"
    for conf in confs:
        work = tmp_path / os.path.basename(conf)
        shutil.copytree(os.path.join(ROOT, "configs"), work)
        text = (work / os.path.basename(conf)).read_text()
        # absolute paths of the operator's machine → inside the sandbox
        for path in sorted(set(re.findall(r'"(/(?:var|etc|srv|data)/[^"]*)"', text)), key=len, reverse=True):
            local = str(work) + path
            text = text.replace(f'"{path}"', f'"{local}"')
            if re.search(r"(\.pass|\.key|\.hmac|\.token|secret|password)$", path):
                os.makedirs(os.path.dirname(local), exist_ok=True)
                with open(local, "w") as f:
                    f.write("example-secret\n")
                os.chmod(local, 0o600)
            elif not os.path.splitext(path)[1]:
                os.makedirs(local, exist_ok=True)
        (work / os.path.basename(conf)).write_text(text)
        r = run_cli("check", "-c", str(work / os.path.basename(conf)))
        assert r.returncode == 0, f"{os.path.basename(conf)}:\n{r.stderr}"
