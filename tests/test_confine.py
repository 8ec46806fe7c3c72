"""A candidate configuration laid over a machine in a bubblewrap sandbox: its files at
their real paths, new directories made, purged directories holding only what it
declares, scratch directories writable — and the machine itself untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.system.confine import Candidate, confine, program, staged

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None and not os.environ.get("CI"),
                                reason="bubblewrap is not installed")

NEW = "/etc/reconciler-candidate-test/app.conf"
PURGED = "/etc/cron.d"


def sandboxed(candidate: Candidate, command: str) -> subprocess.CompletedProcess[str]:
    with staged(candidate) as stage:
        argv = confine("/", command, candidate=candidate, stage=stage)
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def test_the_candidates_files_links_and_purged_directories_are_what_the_check_sees() -> None:
    assert not Path(NEW).parent.exists() and Path("/etc/hostname").exists()
    assert os.listdir(PURGED), "the host's cron.d has entries the candidate purges"
    candidate = Candidate(files=((NEW, b"new\n"), ("/etc/hostname", b"node-01\n")),
                          links=((f"{PURGED}/app", NEW),), emptied=(PURGED,))
    done = sandboxed(candidate, f"cat {NEW} /etc/hostname {PURGED}/app; ls -A {PURGED}; "
                                "test -e /etc/passwd && echo host-files-stay")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "new\nnode-01\nnew\napp\nhost-files-stay\n"
    assert not Path(NEW).parent.exists(), "nothing was made on the machine"
    assert Path("/etc/hostname").read_bytes() != b"node-01\n"


def test_the_machine_is_read_only_but_scratch_directories_are_writable_and_thrown_away(
        tmp_path: Path) -> None:
    candidate = Candidate(scratch_dirs=("/var/cache/reconciler-candidate-test/sa",))
    done = sandboxed(candidate, "touch /var/cache/reconciler-candidate-test/sa/x "
                                "/var/log/reconciler-candidate-test && echo scratch; "
                                "touch /etc/reconciler-candidate-test 2>/dev/null || echo ro")
    assert (done.returncode, done.stdout) == (0, "scratch\nro\n"), done.stderr
    assert not Path("/var/cache/reconciler-candidate-test").exists()
    assert not Path("/var/log/reconciler-candidate-test").exists()


def test_the_checker_is_the_first_word_that_names_a_program() -> None:
    assert program("nginx -t -q") == "nginx"
    assert program("LANG=C chronyd -p") == "chronyd"
    assert program("! grep x") == ""
