"""Generate a large fleet from a config repo, for benchmarks.

`generate(src, dst, nodes=10000)` copies the config repo at `src` (its committed
tree at HEAD) to a new git repository `dst` and grows the fleet to exactly `nodes`
nodes by adding clusters shaped like the first cluster of fleet.xml: its `<vars
cluster=...>` block, its `<nodes>` ranges and its single `<node>` entries are copied
under new cluster names (gen001, gen002...), so every cluster keeps a realistic size
and the templates that list a cluster's nodes stay as large as in the original.
The last cluster is trimmed so the total is exact.
"""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from lxml import etree

from reconciler.compile import names

IDENTITY = {
    "GIT_AUTHOR_NAME": "fleetgen",
    "GIT_AUTHOR_EMAIL": "fleetgen@localhost",
    "GIT_COMMITTER_NAME": "fleetgen",
    "GIT_COMMITTER_EMAIL": "fleetgen@localhost",
}


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **IDENTITY},
                          capture_output=True, check=True)
    return done.stdout.decode()


def _export(src: Path, dst: Path) -> None:
    """The files of `src` at HEAD, written under `dst`."""
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=src,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dst, filter="data")


def _range_names(element: etree._Element, domain: str) -> set[str]:
    start, count = int(element.get("start", "1")), int(element.get("count", "0"))
    return {names.make(element.get("class", ""), number, element.get("product", ""),
                       element.get("cluster", ""), domain, int(element.get("width", "2"))).fqdn
            for number in range(start, start + count)}


def _count(root: etree._Element) -> int:
    domain = root.get("domain", "")
    declared: set[str] = set()
    for element in root.iterchildren("nodes"):
        declared |= _range_names(element, domain)
    return len(declared | {e.get("name", "") for e in root.iterchildren("node")})


def grow(fleet_xml: bytes, nodes: int) -> bytes:
    """fleet.xml with clusters added until it declares exactly `nodes` nodes."""
    root = etree.fromstring(fleet_xml)
    domain = root.get("domain", "")
    ranges = list(root.iterchildren("nodes"))
    if not ranges:
        raise ValueError("fleet.xml has no <nodes> range to copy")
    model = ranges[0].get("cluster")
    blocks = [e for e in root.iterchildren("vars") if list(e.attrib.keys()) == ["cluster"]
              and e.get("cluster") == model]
    model_ranges = [e for e in ranges if e.get("cluster") == model]
    singles = [e for e in root.iterchildren("node")
               if names.parse(e.get("name", "")).cluster == model]
    total = _count(root)
    if nodes < total:
        raise ValueError(f"the fleet already has {total} nodes, more than {nodes}")
    last_range = ranges[-1]
    generated = 0
    while total < nodes:
        generated += 1
        cluster = f"gen{generated:03d}"
        if root.get("clusters") is not None:  # the fleet declares its clusters
            root.set("clusters", f"{root.get('clusters')} {cluster}")
        for block in blocks:
            clone = copy.deepcopy(block)
            clone.set("cluster", cluster)
            last_range.addprevious(clone)
        for element in model_ranges:
            if total >= nodes:
                break
            clone = copy.deepcopy(element)
            clone.set("cluster", cluster)
            count = min(int(element.get("count", "0")), nodes - total)
            clone.set("count", str(count))
            total += count
            last_range.addnext(clone)
            last_range = clone
        for single in singles:
            parsed = names.parse(single.get("name", ""))
            fqdn = names.make(parsed.cls, parsed.number, parsed.product, cluster, domain,
                              parsed.width).fqdn
            if any(fqdn in _range_names(e, domain)
                   for e in root.iterchildren("nodes") if e.get("cluster") == cluster):
                clone = copy.deepcopy(single)
                clone.set("name", fqdn)
                root.append(clone)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def generate(src_repo_dir: str, dst_dir: str, nodes: int = 10000) -> str:
    """A new git repository at `dst_dir`: `src_repo_dir` at HEAD, grown to `nodes` nodes."""
    src, dst = Path(src_repo_dir), Path(dst_dir)
    dst.mkdir(parents=True)
    _export(src, dst)
    fleet = dst / "fleet.xml"
    fleet.write_bytes(grow(fleet.read_bytes(), nodes))
    _git(dst, "init", "-q", "-b", "main")
    _git(dst, "add", "-A")
    _git(dst, "commit", "-q", "--no-verify", "-m", f"Generated fleet of {nodes} nodes")
    return str(dst)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: fleetgen.py SRC_REPO DST_DIR [NODES]")
    print(generate(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 10000))
