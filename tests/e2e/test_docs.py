"""The README's generated parts (config reference, XML⇄JSON convention) match
the code, and every example config passes `check`."""
import glob
import os
import subprocess

from conftest import ROOT, run_cli, sandboxed_example, sidecar_bin


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
        name = os.path.basename(conf)
        path = sandboxed_example(os.path.join(ROOT, "configs"), name, tmp_path / name)
        r = run_cli("check", "-c", path)
        assert r.returncode == 0, f"{name}:\n{r.stderr}"
