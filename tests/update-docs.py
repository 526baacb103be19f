#!/usr/bin/python3
"""Regenerates the generated parts of README.md from their sources, so the docs
cannot drift from the code:
  <!-- keys:begin --> … <!-- keys:end -->         `amqp-sidecar keys` (the key tables)
  <!-- xmljson:begin --> … <!-- xmljson:end -->   transforms/XMLJSON.md
  <!-- demo-config:begin --> … <!-- demo-config:end -->   configs/demo.conf
With --check, changes nothing and exits 1 if README.md is stale."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sections(binary):
    keys = subprocess.run([binary, "keys", "--markdown"], capture_output=True, text=True, check=True).stdout
    with open(os.path.join(ROOT, "transforms", "XMLJSON.md")) as f:
        xmljson = f.read().replace("## XML ⇄ JSON convention", "### XML ⇄ JSON convention", 1)
    with open(os.path.join(ROOT, "configs", "demo.conf")) as f:
        demo = "```\n" + f.read().strip("\n") + "\n```"
    return {"keys": keys.strip("\n"), "xmljson": xmljson.strip("\n"), "demo-config": demo}


def render(text, parts):
    for name, body in parts.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            sys.exit(f"README.md has no <!-- {name}:begin/end --> markers")
        text = pattern.sub(lambda m: m[1] + body + "\n" + m[2], text)
    return text


def main():
    check = "--check" in sys.argv
    binary = os.environ.get("SIDECAR_BIN", os.path.join(ROOT, "build", "amqp-sidecar"))
    path = os.path.join(ROOT, "README.md")
    with open(path) as f:
        old = f.read()
    new = render(old, sections(binary))
    if check:
        if new != old:
            sys.exit("README.md is stale: run `make docs` and commit it")
        return
    if new != old:
        with open(path, "w") as f:
            f.write(new)
        print("README.md updated")


if __name__ == "__main__":
    main()
