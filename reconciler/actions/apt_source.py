"""APT source actions: a deb822 `.sources` file, the keyring from the repo it is signed
with, and its pins; and the one `apt-get update` a run makes when it needs one.

The files are written whole (three-state, keyed by path, so a source dropped from the
config is an orphan like any file). Lists are refreshed at most once per run, after
every source is written: when a source changed, or when a package to install from the
archives is not in the lists.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.actions.fileedit import (
    EditPart,
    Part,
    held_secret,
    kept_record,
    part_drift,
    read_text,
)
from reconciler.actions.files import RemoveFile
from reconciler.actions.textedit import Whole, decode
from reconciler.compile.edits import (
    apt_keyring_file,
    apt_preferences_file,
    apt_sources_file,
    preferences_text,
    sources_text,
)
from reconciler.compile.layout import TEMPLATES_DIR
from reconciler.compile.nodeconfig import AptSourceAction, PackageAction
from reconciler.host import apt
from reconciler.plan.change import ApplyContext, Change, Effect, HostOnly
from reconciler.plan.probe import ActionPlan, Context
from reconciler.system.interface import System

APT_HOST_ONLY = HostOnly("apt-get update runs for the running system (or under --root with "
                         "--host-commands, with apt's own root options)")


@dataclass(frozen=True, kw_only=True)
class RefreshLists(Change):
    """`apt-get update`, bounded; once per run (see `refresh_lists`)."""

    op = "apt-update"

    def apply(self, ctx: ApplyContext) -> Effect:
        apt.update(ctx.system)
        return None


def runs_apt(system: System) -> bool:
    """Whether apt-get may fetch for this system: the running one, or a root with
    --host-commands."""
    return system.root == "/" or system.runs_host_commands


def desired_files(ctx: Context, action: AptSourceAction) -> dict[str, bytes | None]:
    """Each file of the source and its content (None: it must not exist)."""
    present = action.ensure == "present"
    files: dict[str, bytes | None] = {
        apt_sources_file(action): sources_text(action).encode() if present else None}
    keyring = apt_keyring_file(action)
    if keyring is not None:
        files[keyring] = ctx.read_repo(f"{TEMPLATES_DIR}/{action.key}") if present else None
    files[apt_preferences_file(action)] = \
        preferences_text(action).encode() if present and action.pins else None
    return files


def probe(ctx: Context, action: AptSourceAction) -> ActionPlan:
    """Each of the source's files against what it should hold."""
    plan = ActionPlan(action)
    for path, content in desired_files(ctx, action).items():
        record = ctx.applied.get(path)
        live = ctx.system.lstat(path)
        if content is None:
            if live is not None:
                if live.kind not in ("file", "symlink"):
                    raise ValueError(f"{path} is a {live.kind}; refusing to remove it")
                plan.changes.append(RemoveFile(action=action, summary="remove",
                                               path=path,
                                               last_commit=record.commit if record else None))
            continue
        text = decode(content)
        before = read_text(ctx.system, path)
        part = Part(path, before, text, before, text)
        if part.in_sync:
            plan.in_sync[path] = kept_record(ctx, path, action.id, "file", path, text)
            continue
        state, last = part_drift(ctx, path, part)
        plan.changes.append(EditPart(
            action=action, summary="create" if before is None else "update",
            path=path, diff=part.diff(), drift=state, last_commit=last, key=path,
            edit=Whole(text), kind="file", digest=ctx.digest(content, False),
            was_secret=held_secret(ctx, path)))
    return plan


def wants_lists(ctx: Context, action: PackageAction) -> RefreshLists | None:
    """The refresh a package to install from the archives needs when the lists do not know
    it (asked only where apt may fetch); `refresh_lists` merges these into one."""
    if not runs_apt(ctx.system) or not apt.unknown(ctx.system, [action.name]):
        return None
    return RefreshLists(action=action, summary=f"apt-get update ({action.name} is not in the "
                                               "package lists)")


def refresh_lists(ctx: Context, plans: list[ActionPlan]) -> None:
    """Make the run's one `apt-get update`: after the last APT source when a source will
    change (it is skipped if none really did) or a package is missing from the lists, else
    before the first such package."""
    wanting = [(plan, change) for plan in plans for change in plan.changes
               if isinstance(change, RefreshLists)]
    for plan, change in wanting:
        plan.changes.remove(change)
    sources = [plan for plan in plans if isinstance(plan.action, AptSourceAction)]
    changed = [plan.action.id for plan in sources if any(c.held is None for c in plan.changes)]
    packages = [plan.action.id.partition(":")[2] for plan, _ in wanting]
    if not changed and not packages:
        return
    reasons = [f"sources changed: {', '.join(changed)}"] if changed else []
    reasons += [f"not in the package lists: {', '.join(packages)}"] if packages else []
    carrier = sources[-1] if sources else wanting[0][0]
    waits_for = () if packages or carrier.action.id in changed else tuple(changed)
    refresh = RefreshLists(action=carrier.action, summary=f"apt-get update ({'; '.join(reasons)})",
                           notified_by=waits_for,
                           held=None if runs_apt(ctx.system) else APT_HOST_ONLY)
    if sources:
        carrier.changes.append(refresh)
    else:
        carrier.changes.insert(0, refresh)
