"""The reports repository's gate: which pushed ref updates the server accepts.

Run by the `pre-receive` hook (`reconciler fleet check-push`, the updates on stdin).
An update is accepted only when:

- its ref is `refs/reports/<node>` of a node in the fleet at the config repo's main
  (`git config reconciler.configRepo`, default this repository; the branch is
  `reconciler.protectedBranch`, default main), and it does not delete the ref;
- every new commit, and the new tip, is signed by a key registered for that node at
  `keys/nodes/<node>/signing.pub` there (git's own SSH signature verification, with an
  allowed-signers file holding exactly those keys), holds `report.json` and nothing
  else, at most `reconciler.reportMaxBytes` (default 1 MiB), which parses as a report
  of that very node;
- a non-fast-forward (a node rotating its bounded history) brings a newer report than
  the one it replaces, so an old report of a node can never be replayed over its ref.

The hook's objects sit in git's quarantine, which git only reads with the environment
it gave the hook: those variables are kept for reading this repository and removed
before reading the config repository.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reconciler.compile import names
from reconciler.errors import ReconcilerError
from reconciler.fleet import keys, membership
from reconciler.fleet.chain import MAX_REPORT_BYTES, MAX_REPORTS, REF_PREFIX, REPORT_FILE
from reconciler.git import Done, Git

_HOOK_ENV = ("GIT_DIR", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
             "GIT_QUARANTINE_PATH")
# A push carries the new reports since the last push, or a rotated chain (chain.py).
MAX_NEW_COMMITS = 2 * MAX_REPORTS


@dataclass(frozen=True)
class Update:
    old: str
    new: str
    ref: str

    @property
    def node(self) -> str:
        return self.ref.removeprefix(REF_PREFIX)


def _zero(sha: str) -> bool:
    return set(sha) == {"0"}


class _Repo:
    """The reports repository as the hook sees it (quarantined objects included)."""

    def __init__(self, git_dir: Path, env: dict[str, str]) -> None:
        self.git_dir = git_dir
        self.env = env

    def git(self, *args: str, stdin: bytes | None = None) -> Done:
        return Git(self.git_dir).run(*args, stdin=stdin, env=self.env)


def check(git_dir: Path, updates_text: str) -> list[str]:
    """Why each refused update is refused; an empty list accepts the push."""
    hook_env = {k: os.environ.pop(k) for k in _HOOK_ENV if k in os.environ}
    hook_env.pop("GIT_DIR", None)  # we name the repository ourselves
    repo = _Repo(git_dir.resolve(), hook_env)
    refusals: list[str] = []
    updates: list[Update] = []
    for line in updates_text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        update = Update(*parts)
        if not update.ref.startswith(REF_PREFIX) or "/" in update.node or not update.node:
            refusals.append(f"{update.ref}: only refs/reports/<node> may be pushed to the "
                            "reports repository")
        elif _zero(update.new):
            refusals.append(f"{update.ref}: deleting a node's reports is refused")
        else:
            updates.append(update)
    if not updates:
        return refusals
    config_dir = membership.config_repo(repo.git_dir)
    branch = membership.setting(repo.git_dir, "reconciler.protectedBranch") or "main"
    commit = membership.branch_tip(config_dir, branch)
    if commit is None:
        return refusals + [f"{u.ref}: cannot read branch {branch} of the config repository "
                           f"{config_dir}" for u in updates]
    try:
        nodes = membership.fleet_nodes(config_dir, commit,
                                       repo.git_dir / membership.CACHE)
    except ReconcilerError as exc:
        return refusals + [f"{u.ref}: the fleet at {branch} ({commit[:12]}) does not load: "
                           f"{exc.summary().splitlines()[0]}" for u in updates]
    registered = membership.registered_keys(config_dir, commit, [u.node for u in updates])
    cap_text = membership.setting(repo.git_dir, "reconciler.reportMaxBytes")
    cap = int(cap_text) if cap_text and cap_text.isdigit() else MAX_REPORT_BYTES
    for update in updates:
        problem = _check_update(repo, update, nodes, registered.get(update.node, []), cap,
                                branch)
        if problem is not None:
            refusals.append(f"{update.ref}: {problem}")
    return refusals


def _check_update(repo: _Repo, update: Update, nodes: set[str], node_keys: list[str],
                  cap: int, branch: str) -> str | None:
    """Why one update of a node's ref is refused, or None."""
    node = update.node
    try:
        names.parse(node)
    except ValueError as exc:
        return str(exc)
    if node not in nodes:
        return f"{node} is not a node of the fleet at the config repository's {branch}"
    if not node_keys:
        return (f"no signing key is registered for {node} (add it at "
                f"{keys.registered_path(node)} on {branch})")
    listed = repo.git("rev-list", f"--max-count={MAX_NEW_COMMITS + 1}", update.new,
                      "--not", "--all")
    if not listed.ok:
        return f"cannot list the pushed commits: {listed.tail()}"
    commits = listed.out.split()
    if len(commits) > MAX_NEW_COMMITS:
        return f"more than {MAX_NEW_COMMITS} new report commits in one push"
    if update.new not in commits:
        commits.insert(0, update.new)  # an existing commit put on this ref is checked too
    problem = _signatures(repo, node, node_keys, commits, branch)
    if problem is None:
        problem = _contents(repo, node, commits, cap)
    if problem is None and not _zero(update.old):
        problem = _replay(repo, update)
    return problem


def _signatures(repo: _Repo, node: str, node_keys: list[str], commits: list[str],
                branch: str) -> str | None:
    with tempfile.NamedTemporaryFile("w", prefix="reconciler-signers-", suffix=".txt") as signers:
        signers.write(keys.allowed_signers(node, node_keys))
        signers.flush()
        done = repo.git("-c", f"gpg.ssh.allowedSignersFile={signers.name}", "log",
                        "--no-walk=unsorted", "--format=%H %G? %GS", *commits, "--")
    if not done.ok:
        return f"cannot check signatures: {done.tail()}"
    for line in done.out.splitlines():
        sha, status, *signer = line.split(" ", 2)
        if status == "N":
            return f"commit {sha[:12]} is not signed (a report must be signed by its node)"
        if status != "G" or (signer and signer[0] != node):
            return (f"commit {sha[:12]} is not signed by a key registered for {node} "
                    f"(at {keys.registered_path(node)} on {branch})")
    return None


def _contents(repo: _Repo, node: str, commits: list[str], cap: int) -> str | None:
    """Each commit holds `report.json` alone, within `cap`, a report of `node`."""
    for sha in commits:
        listing = repo.git("ls-tree", "--name-only", sha)
        if listing.out.split("\n")[:-1] != [REPORT_FILE]:
            return f"commit {sha[:12]} must hold {REPORT_FILE} and nothing else"
    request = "".join(f"{sha}:{REPORT_FILE}\n" for sha in commits).encode()
    sizes = repo.git("cat-file", "--batch-check", stdin=request).out.splitlines()
    for sha, line in zip(commits, sizes, strict=True):
        parts = line.split()
        if len(parts) != 3 or parts[1] != "blob":
            return f"commit {sha[:12]}: {REPORT_FILE} is not a file"
        if int(parts[2]) > cap:
            return (f"commit {sha[:12]}: {REPORT_FILE} is {int(parts[2])} bytes, over the "
                    f"{cap}-byte cap")
    # Only a push that gets this far loads pydantic (and builds the report's models).
    from pydantic import ValidationError

    from reconciler.fleet.model import FleetReport

    for sha in commits:
        blob = repo.git("cat-file", "blob", f"{sha}:{REPORT_FILE}")
        try:
            report = FleetReport.model_validate_json(blob.stdout)
        except ValidationError as exc:
            return (f"commit {sha[:12]}: {REPORT_FILE} is not a report: "
                    f"{exc.errors()[0]['msg']}")
        if report.node != node:
            return f"commit {sha[:12]} is a report of {report.node}, not of {node}"
    return None


def _replay(repo: _Repo, update: Update) -> str | None:
    """A non-fast-forward must bring a newer report than the one it replaces."""
    if repo.git("merge-base", "--is-ancestor", update.old, update.new).ok:
        return None
    from pydantic import ValidationError

    from reconciler.fleet.model import FleetReport

    old, new = (repo.git("cat-file", "blob", f"{sha}:{REPORT_FILE}")
                for sha in (update.old, update.new))
    try:
        old_time = FleetReport.model_validate_json(old.stdout).time
    except ValidationError:
        return None  # what it replaces was never a readable report
    if FleetReport.model_validate_json(new.stdout).time <= old_time:
        return ("non-fast-forward to an older report: a node's reports only move forward "
                "(an old report cannot be pushed over a newer one)")
    return None
