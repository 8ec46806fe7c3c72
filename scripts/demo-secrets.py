#!/usr/bin/env python3
"""Keep the example fleet's encrypted secrets in step with the fleet: DEMO ONLY.

Gives every example node whose templates read a secret a demo age identity (under
repo_layout/keys/demo-identities/, with its public key in keys/nodes/), drops the keys
of nodes that no longer need one, encrypts any plain secret value, and re-encrypts
every secret to exactly the nodes that use it. Run it after changing which nodes or
templates use secrets in the example: `.venv/bin/python scripts/demo-secrets.py`.

Real fleets never do this: a node makes its own key (`reconciler bootstrap`) and no
private key ever enters the config repo.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.render.renderer import Renderer
from reconciler.render.usage import templates_of
from reconciler.secrets import age, keys, workflow
from reconciler.source.snapshot import WorkTree

PROJECT = Path(__file__).resolve().parent.parent
LAYOUT = PROJECT / "repo_layout"
IDENTITIES = LAYOUT / "keys" / "demo-identities"
ADMIN = "demo-admin"


def nodes_reading_secrets(repo: Path) -> set[str]:
    """The nodes whose templates read a secret variable (plain or encrypted)."""
    fleet = load_fleet(WorkTree(str(repo)))
    renderer = Renderer(fleet)
    found = set()
    for name in fleet.node_names():
        node = compile_node(fleet, name)
        secret = node.secret_names()
        for template in templates_of(renderer, node):
            read, dynamic = renderer.referenced(template)
            if dynamic or read & secret:
                found.add(name)
                break
    return found


def ensure_identity(who: str, public_path: Path) -> None:
    private = IDENTITIES / f"{who}.key"
    if private.exists():
        recipient = str(age.read_identities(str(private))[0].to_public())
    else:
        pair = age.generate()
        age.write_identity(str(private), pair, f"DEMO ONLY identity of {who}: never do this")
        recipient = pair.recipient
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_text(recipient + "\n")


def main() -> int:
    IDENTITIES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        repo = Path(scratch) / "fleet"
        shutil.copytree(LAYOUT, repo)
        shutil.copytree(PROJECT / "templates", repo / "templates")
        shutil.rmtree(repo / keys.NODES_DIR, ignore_errors=True)
        ensure_identity(ADMIN, repo / keys.admin_key_path(ADMIN))
        needed = nodes_reading_secrets(repo)
        for node in sorted(needed):
            ensure_identity(node, repo / keys.node_key_path(node))
        for stale in IDENTITIES.glob("*.key"):
            if stale.stem not in needed and stale.stem != ADMIN:
                stale.unlink()
        for line in workflow.migrate(str(repo)).lines:
            print(line)
        admin = age.read_identities(str(IDENTITIES / f"{ADMIN}.key"))
        for line in workflow.rekey(str(repo), admin).lines:
            print(line)
        for part in ("fleet.xml", "classes", "secrets", keys.NODES_DIR, keys.ADMINS_DIR):
            source, target = repo / part, LAYOUT / part
            if target.is_dir():
                shutil.rmtree(target)
            if source.is_dir():
                shutil.copytree(source, target)
            elif source.exists():
                shutil.copy2(source, target)
    print(f"{len(needed)} nodes read secrets; demo identities in {IDENTITIES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
