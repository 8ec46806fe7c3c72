"""A file's `validate=`: the candidate under its real name, `%%`, and under another root
the root's files — never the host's — or "not validated"."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from node_root import with_users

from reconciler.system.candidate import fill
from reconciler.system.interface import ValidationFailed
from reconciler.system.local import LocalSystem

UNIT = b"[Unit]\nDescription=demo\n\n[Service]\nExecStart=/bin/true\n"


def needs(*programs: str) -> pytest.MarkDecorator:
    """Skip where a real checker (or bubblewrap) is missing, except in CI, where
    scripts/test.sh installs them all."""
    missing = [name for name in programs if shutil.which(name) is None]
    return pytest.mark.skipif(bool(missing) and not os.environ.get("CI"),
                              reason=f"not installed: {' '.join(missing)}")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Configuration over this host's programs, a system already: it has its users (a
    root without is still being built, and is not checked)."""
    return with_users(tmp_path / "root")


def test_percent_percent_is_a_percent_sign_and_percent_s_the_quoted_candidate() -> None:
    assert fill("printf '100%%' && check %s", "/etc/a b") == "printf '100%' && check '/etc/a b'"
    assert fill("echo %%s %s", "/x") == "echo %s /x"


@needs("bwrap")
def test_escaped_percent_reaches_the_command(root: Path) -> None:
    system = LocalSystem(str(root))
    assert system.write_atomic("/etc/app.conf", b"x\n", 0o644, None, None,
                               validate='test "5%%" = "5%" && test -s %s') is None
    assert (root / "etc" / "app.conf").read_bytes() == b"x\n"


@needs("bwrap", "nginx")
def test_under_another_root_the_checker_reads_the_roots_includes_not_the_hosts(
        root: Path) -> None:
    assert Path("/etc/nginx/mime.types").exists(), "the host has it; the root does not"
    (root / "etc" / "nginx").mkdir()
    system = LocalSystem(str(root))
    conf = b"events {}\nhttp { include /etc/nginx/mime.types; }\n"
    with pytest.raises(ValidationFailed, match=r'open\(\) "/etc/nginx/mime.types" failed'):
        system.write_atomic("/etc/nginx/nginx.conf", conf, 0o644, None, None,
                            validate="nginx -t -q -c %s")
    assert not (root / "etc" / "nginx" / "nginx.conf").exists()
    for name in ("nginx/mime.types", "passwd", "group"):  # nginx -t looks its user up
        shutil.copy(f"/etc/{name}", root / "etc" / name)
    assert system.write_atomic("/etc/nginx/nginx.conf", conf, 0o644, None, None,
                               validate="nginx -t -q -c %s") is None
    assert sorted(os.listdir(root / "etc" / "nginx")) == ["mime.types", "nginx.conf"], \
        "no candidate or private directory left"


@needs("bwrap", "systemd-analyze")
def test_a_checker_that_reads_the_file_name_sees_the_real_one(root: Path) -> None:
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    system = LocalSystem(str(root))
    assert system.write_atomic(
        "/etc/systemd/system/demo.service", UNIT, 0o644, None, None,
        validate='sh -c \'basename "$1" > /etc/seen && systemd-analyze verify "$1"\' -- %s',
    ) is None
    assert (root / "etc" / "seen").read_text() == "demo.service\n"
    assert sorted(os.listdir(root / "etc" / "systemd" / "system")) == ["demo.service"]


def test_a_root_with_programs_of_its_own_but_not_the_checker_is_written_not_validated(
        root: Path) -> None:
    (root / "usr" / "bin").mkdir(parents=True)
    system = LocalSystem(str(root))
    note = system.write_atomic("/etc/app.conf", b"x\n", 0o644, None, None,
                               validate="nginx -t -q -c %s")
    assert note is not None
    assert note.startswith("not validated: ") and "has no nginx" in note
    assert (root / "etc" / "app.conf").read_bytes() == b"x\n"


def test_a_root_still_being_built_is_written_and_said_not_validated(tmp_path: Path) -> None:
    """No programs and no users of its own yet: this host's checker would fail for what
    the root lacks, not for the file, so it is not run."""
    building = tmp_path / "building"
    (building / "etc").mkdir(parents=True)
    system = LocalSystem(str(building))
    note = system.write_atomic("/etc/app.conf", b"x\n", 0o644, None, None, validate="false %s")
    assert note is not None and "is not a system yet" in note
    assert (building / "etc" / "app.conf").read_bytes() == b"x\n"
