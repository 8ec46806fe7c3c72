"""The config repo's git hooks, run by real git: pre-receive on a bare repository,
pre-commit in a clone, mr-check as a CI job would run it.

Hooks run with PATH limited to the system directories, so they can only find
reconciler through the path recorded at install time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from clirun import RECONCILER
from review_support import FleetRepo, run

from reconciler.review.hooks import hook_source

SYSTEM_PATH = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
BROKEN = ("templates/web/nginx.conf.j2", "{{ workers }}", "{{ workers }")
ERROR = "templates/web/nginx.conf.j2:1: template syntax error"


def _server(tmp_path: Path, repo: FleetRepo, *config: tuple[str, str],
            holding: tuple[str, ...] = ()) -> Path:
    """A bare repository with pre-receive installed, `origin` of `repo`, already holding
    the branches `holding` as they are in `repo` (pushed before the hooks are installed:
    a push the hooks judge starts a reconciler, and these pushes are not under test)."""
    bare = tmp_path / "server.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], tmp_path, repo.home)
    for key, value in config:
        run(["git", "-C", str(bare), "config", key, value], tmp_path, repo.home)
    repo.git("remote", "add", "origin", str(bare))
    if holding:
        repo.git("push", "-q", "origin", *holding)
    done = repo.reconciler("hooks", "install", "--server", str(bare))
    assert done.returncode == 0, done.stderr
    return bare


def _push(repo: FleetRepo, *args: str) -> subprocess.CompletedProcess[str]:
    return repo.git("push", *args, check=False, env=SYSTEM_PATH)


def test_good_push_is_accepted(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    bare = _server(tmp_path, repo)
    repo.edit("classes/web.xml", 'type="int">65<', 'type="int">75<')
    sha = repo.commit("Longer keepalive")
    done = _push(repo, "origin", "main")
    assert done.returncode == 0, done.stderr
    assert run(["git", "-C", str(bare), "rev-parse", "main"], tmp_path, repo.home
               ).stdout.strip() == sha


def test_push_with_broken_template_is_rejected_with_the_error(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    bare = _server(tmp_path, repo, holding=("main",))
    repo.edit(*BROKEN)
    repo.commit("Broken template")
    done = _push(repo, "origin", "main")
    assert done.returncode != 0
    assert f"remote: {ERROR}" in done.stderr
    assert "breaks the fleet configuration; push refused" in done.stderr
    assert "pre-receive hook declined" in done.stderr
    branch = run(["git", "-C", str(bare), "rev-parse", "main"], tmp_path, repo.home)
    assert branch.stdout.strip() == repo.git("rev-parse", "HEAD~1").stdout.strip()


def test_broken_push_to_another_branch_is_rejected_too(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    _server(tmp_path, repo)
    repo.git("checkout", "-q", "-b", "feature")
    repo.edit(*BROKEN)
    repo.commit("Broken template")
    done = _push(repo, "origin", "feature")
    assert done.returncode != 0
    assert ERROR in done.stderr


def test_force_push_to_main_is_rejected(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.edit("classes/web.xml", 'type="int">65<', 'type="int">75<')
    repo.commit("Longer keepalive")
    _server(tmp_path, repo, holding=("main",))
    repo.git("reset", "-q", "--hard", "HEAD~1")
    repo.edit("classes/web.xml", 'type="int">65<', 'type="int">85<')
    repo.commit("Even longer keepalive, history rewritten")
    done = _push(repo, "--force", "origin", "main")
    assert done.returncode != 0
    assert "non-fast-forward push to the protected branch main is refused" in done.stderr


def test_force_push_to_a_feature_branch_is_allowed(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    repo.git("checkout", "-q", "-b", "feature")
    repo.edit("classes/web.xml", 'type="int">65<', 'type="int">75<')
    repo.commit("Longer keepalive")
    _server(tmp_path, repo, holding=("feature",))
    repo.git("commit", "-q", "--amend", "-m", "Longer keepalive (reworded)")
    done = _push(repo, "--force", "origin", "feature")
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen to sign")
def test_required_signature_refuses_unsigned_and_accepts_allowed_key(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    key = tmp_path / "signing-key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f", str(key)],
        tmp_path, repo.home)
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"author@example.org {(tmp_path / 'signing-key.pub').read_text()}")
    _server(tmp_path, repo, ("reconciler.requireSigned", "head"),
            ("gpg.ssh.allowedSignersFile", str(signers)))
    done = _push(repo, "origin", "main")
    assert done.returncode != 0
    assert "not signed (reconciler.requireSigned=head)" in done.stderr
    repo.git("-c", "gpg.format=ssh", "-c", f"user.signingKey={key}",
             "commit", "-q", "--amend", "-S", "--no-edit")
    done = _push(repo, "origin", "main")
    assert done.returncode == 0, done.stderr


def _clone_with_pre_commit(tmp_path: Path) -> FleetRepo:
    repo = FleetRepo(tmp_path)
    done = repo.reconciler("hooks", "install")
    assert done.returncode == 0, done.stderr
    return repo


def test_pre_commit_judges_broken_staged_content_not_the_fixed_working_tree(
    tmp_path: Path,
) -> None:
    repo = _clone_with_pre_commit(tmp_path)
    repo.edit(*BROKEN)
    repo.git("add", BROKEN[0])
    repo.edit(BROKEN[0], BROKEN[2], BROKEN[1])  # the working tree is fine again
    done = repo.git("commit", "-m", "Staged a broken template", check=False, env=SYSTEM_PATH)
    assert done.returncode != 0
    assert ERROR in done.stderr
    assert "the staged configuration is invalid; commit refused" in done.stderr


def test_pre_commit_accepts_good_staged_content_while_the_working_tree_is_broken(
    tmp_path: Path,
) -> None:
    repo = _clone_with_pre_commit(tmp_path)
    repo.edit("classes/web.xml", 'type="int">65<', 'type="int">75<')
    repo.git("add", "classes/web.xml")
    repo.edit(*BROKEN)  # not staged
    before = repo.head()
    done = repo.git("commit", "-q", "-m", "Longer keepalive", check=False, env=SYSTEM_PATH)
    assert done.returncode == 0, done.stderr
    assert repo.head() != before


def test_install_records_the_running_reconciler(tmp_path: Path) -> None:
    repo = _clone_with_pre_commit(tmp_path)
    hook = (repo.path / ".git" / "hooks" / "pre-commit").read_text()
    assert f"installed_reconciler={os.path.abspath(RECONCILER)}\n" in hook
    assert os.access(repo.path / ".git" / "hooks" / "pre-commit", os.X_OK)


def test_install_refuses_to_replace_a_foreign_hook_without_force(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    foreign = repo.path / ".git" / "hooks" / "pre-commit"
    foreign.parent.mkdir()
    foreign.write_text("#!/bin/sh\nexit 0\n")
    done = repo.reconciler("hooks", "install")
    assert done.returncode == 1
    assert "was not installed by reconciler" in done.stderr
    assert foreign.read_text() == "#!/bin/sh\nexit 0\n"
    done = repo.reconciler("hooks", "install", "--force")
    assert done.returncode == 0, done.stderr
    assert "reconciler hook" in foreign.read_text()


def test_server_install_refuses_a_non_bare_repository(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    done = repo.reconciler("hooks", "install", "--server", str(repo.path))
    assert done.returncode == 1
    assert "is not a bare repository" in done.stderr


def _mr_check(repo: FleetRepo, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**SYSTEM_PATH, "RECONCILER": RECONCILER, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}
    return run(["sh", str(hook_source("mr-check")), "--out", str(out)], repo.path, repo.home,
               check=False, env=env)


def test_mr_check_plans_against_the_merge_base_and_writes_both_reports(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    _server(tmp_path, repo, holding=("main",))
    repo.git("checkout", "-q", "-b", "feature")
    repo.edit("classes/web.xml", 'type="int">65<', 'type="int">75<')
    repo.commit("Longer keepalive")
    done = _mr_check(repo, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert "8 of 10 nodes change (web, all clusters), severity reload" in done.stdout
    markdown = (tmp_path / "out" / "plan.md").read_text()
    assert markdown.startswith("### reconciler plan: 8 of 10 nodes change")
    assert json.loads((tmp_path / "out" / "plan.json").read_text())["changed_nodes"] == 8


def test_mr_check_fails_on_an_invalid_head_and_says_why_in_plan_md(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path)
    _server(tmp_path, repo, holding=("main",))
    repo.git("checkout", "-q", "-b", "feature")
    repo.edit(*BROKEN)
    repo.commit("Broken template")
    done = _mr_check(repo, tmp_path / "out")
    assert done.returncode == 1
    assert ERROR in done.stderr
    assert ERROR in (tmp_path / "out" / "plan.md").read_text()
