"""`reconciler plan` on the kinds that edit the node's own databases: each shows what it
changes — text as a diff (blocks, keys, APT sources), the rest as attributes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from review_support import SMALL_FLEET, FleetRepo

ALICE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhvqcTXRD8rp/wEDnIliVxVaWEguacID83zg3nCtARQ alice@sa"
BOB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH33JWguGX53hp2Fgql+l+rHFgUkxvVAckTM/Di8643G bob@sa"

BASE = f"""\
<class name="base">
  <file path="/etc/resolv.conf" template="base/resolv.conf.j2" mode="0644"/>
  <group name="ops" gid="2000"/>
  <user name="ops" uid="2000" group="ops" groups="adm" shell="/bin/bash"/>
  <authorized-keys user="ops" exclusive="true"><key>{ALICE}</key></authorized-keys>
  <apt-source name="sa" uris="https://apt.sa.example/debian" suites="bookworm"
              components="main"/>
  <line path="/etc/hosts" name="apt" line="10.1.0.5 apt.sa"/>
  <block path="/etc/hosts" name="fleet"><content>10.1.0.11 app-11
</content></block>
  <mount path="/srv/data" device="LABEL=data" fstype="ext4"/>
  <directory path="/etc/cron.d"/>
  <package name="chrony"/>
</class>
"""


def _plan(tmp_path: Path, *edits: tuple[str, str]) -> dict[str, Any]:
    repo = FleetRepo(tmp_path, {**SMALL_FLEET, "classes/base.xml": BASE})
    for old, new in edits:
        repo.edit("classes/base.xml", old, new)
    repo.commit("ops changes")
    out = tmp_path / "plan.json"
    done = repo.reconciler("plan", "--base", "HEAD~1", "--head", "HEAD", "--json", str(out),
                           "--jobs", "1")
    assert done.returncode == 2, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(out.read_text())
    assert len(report["groups"]) == 1
    assert report["changed_nodes"] == 10
    changes: dict[str, Any] = report["groups"][0]["changes"]
    return changes


def test_a_new_key_shows_as_a_diff_of_the_users_keys(tmp_path: Path) -> None:
    changes = _plan(tmp_path, (f"<key>{ALICE}</key>", f"<key>{ALICE}</key><key>{BOB}</key>"))
    [keys] = changes["files"]
    assert (keys["path"], keys["action"], keys["note"], keys["severity"]) == \
        ("~ops/.ssh/authorized_keys", "authorized-keys:ops", "keys (whole file)", "none")
    assert f"\n+{BOB}\n" in keys["diff"]
    assert changes["actions"] == []


def test_a_block_and_an_apt_source_show_their_text_and_a_line_its_attribute(
        tmp_path: Path) -> None:
    changes = _plan(tmp_path, ("10.1.0.11 app-11\n", "10.1.0.11 app-11\n10.1.0.12 app-12\n"),
                    ('components="main"', 'components="main contrib"'),
                    ("10.1.0.5 apt.sa", "10.1.0.6 apt.sa"))
    files = {f["note"]: f for f in changes["files"]}
    assert files["block fleet"]["path"] == "/etc/hosts"
    assert "+10.1.0.12 app-12\n" in files["block fleet"]["diff"]
    assert files["APT source"]["path"] == "/etc/apt/sources.list.d/sa.sources"
    assert "-Components: main\n+Components: main contrib\n" in files["APT source"]["diff"]
    attributes = {a["action"]: a["attributes"] for a in changes["actions"]}
    assert attributes == {
        "line:/etc/hosts#apt": [{"name": "line", "old": "10.1.0.5 apt.sa",
                                 "new": "10.1.0.6 apt.sa"}],
        "apt-source:sa": [{"name": "components", "old": "main", "new": "main contrib"}]}


def test_account_mount_purge_and_hold_changes_are_attributes_with_their_severity(
        tmp_path: Path) -> None:
    changes = _plan(tmp_path, ('groups="adm"', 'groups="adm sudo"'),
                    ('fstype="ext4"/>', 'fstype="ext4" options="noatime"/>'),
                    ('<directory path="/etc/cron.d"/>',
                     '<directory path="/etc/cron.d" purge="true"/>'),
                    ('<package name="chrony"/>', '<package name="chrony" hold="true"/>'))
    found = {a["action"]: (a["severity"], {x["name"]: (x["old"], x["new"])
                                           for x in a["attributes"]})
             for a in changes["actions"]}
    assert found == {
        "user:ops": ("none", {"groups": ("adm", "adm sudo")}),
        "mount:/srv/data": ("restart", {"options": ("defaults", "noatime")}),
        "directory:/etc/cron.d": ("none", {"purge": ("false", "true")}),
        "package:chrony": ("restart", {"hold": (None, "true")}),
    }
