"""Mount actions: a filesystem's /etc/fstab entry and whether it is mounted.

The fstab entry is an edit of /etc/fstab (three states, keyed by the action's id) that
interrupts nothing; mounting, unmounting and remounting carry the action's severity
(default restart: whatever uses the mount point sees it change). Mounting acts on the
host's mount table, so under another root it is held unless --host-commands.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.actions.common import missing_parents
from reconciler.actions.fileedit import (
    EditPart,
    Part,
    kept_record,
    part_drift,
    read_text,
    text_digest,
)
from reconciler.actions.textedit import FstabEdit, fstab_entry
from reconciler.compile.edits import FSTAB
from reconciler.compile.nodeconfig import MountAction
from reconciler.host import mounts
from reconciler.plan.change import ApplyContext, Change, Effect, HostOnly
from reconciler.plan.probe import ActionPlan, Context

MOUNT_HOST_ONLY = HostOnly("mounting changes the host's mount table; not done because --root "
                           "is not / (--host-commands mounts on the root's mount point)")
POINT_MODE = 0o755
# Options the kernel shows for a mounted filesystem just as fstab spells them; each is
# checked against the live mount (others, like size=1m, the kernel rewrites).
_SHOWN = frozenset({"ro", "rw", "noexec", "nosuid", "nodev", "noatime", "nodiratime",
                    "relatime", "strictatime", "sync"})
_NEGATED = {"exec": "noexec", "suid": "nosuid", "dev": "nodev"}


@dataclass(frozen=True, kw_only=True)
class WriteFstab(EditPart):
    """Write the mount's fstab entry (or remove it); nothing is mounted or unmounted."""

    op = "fstab"
    interrupts = False


@dataclass(frozen=True, kw_only=True)
class Mount(Change):
    """Mount the filesystem, creating the mount point if it is missing."""

    op = "mount"
    action: MountAction

    def apply(self, ctx: ApplyContext) -> Effect:
        action = self.action
        for directory in [*missing_parents(ctx.system, action.path), action.path]:
            if ctx.system.lstat(directory) is None:
                ctx.system.mkdir(directory, POINT_MODE, None, None)
        mounts.mount(ctx.system, action.device, action.fstype, action.options,
                     ctx.system.host_path(action.path))
        return None


@dataclass(frozen=True, kw_only=True)
class Remount(Change):
    """Apply new options to the mounted filesystem in place (mount -o remount)."""

    op = "remount"
    action: MountAction

    def apply(self, ctx: ApplyContext) -> Effect:
        mounts.remount(ctx.system, self.action.options, ctx.system.host_path(self.action.path))
        return None


@dataclass(frozen=True, kw_only=True)
class Unmount(Change):
    """Unmount what is mounted on the mount point."""

    op = "umount"
    action: MountAction

    def apply(self, ctx: ApplyContext) -> Effect:
        mounts.unmount(ctx.system, ctx.system.host_path(self.action.path))
        return None


@dataclass(frozen=True, kw_only=True)
class Replace(Mount):
    """Unmount another filesystem mounted on the point, then mount the declared one."""

    op = "replace-mount"

    def apply(self, ctx: ApplyContext) -> Effect:
        mounts.unmount(ctx.system, ctx.system.host_path(self.action.path))
        return super().apply(ctx)


def probe(ctx: Context, action: MountAction) -> ActionPlan:
    """The fstab entry against the declared one, then the mount table."""
    plan = ActionPlan(action)
    entry = None if action.state == "absent" else fstab_entry(
        action.device, action.path, action.fstype, action.options, action.dump,
        action.fsck_pass)
    edit = FstabEdit(action.path, entry)
    before = read_text(ctx.system, FSTAB)
    live_entry = edit.found(before or "")
    part = Part(FSTAB, before, edit(before or ""), live_entry, entry)
    if not part.in_sync and not (before is None and entry is None):
        state, last = part_drift(ctx, action.id, part)
        summary = "remove the fstab entry" if entry is None else \
            ("add the fstab entry" if live_entry is None else "update the fstab entry")
        plan.changes.append(WriteFstab(
            action=action, summary=summary, path=FSTAB, diff=part.diff(), drift=state,
            last_commit=last, key=action.id, edit=edit, kind="mount",
            digest=None if entry is None else text_digest(ctx, entry)))
    elif entry is not None:
        plan.in_sync[action.id] = kept_record(ctx, action.id, action.id, "mount", FSTAB, entry)
    if action.state != "present":
        _probe_mounted(ctx, plan, action, live_entry)
    return plan


def _probe_mounted(ctx: Context, plan: ActionPlan, action: MountAction,
                   live_entry: str | None) -> None:
    live = mounts.mounted(ctx.system, ctx.system.host_path(action.path))
    held = None if ctx.system.runs_host_commands else MOUNT_HOST_ONLY
    what = f"{action.device} ({action.fstype}) on {action.path}"
    if action.state in ("unmounted", "absent"):
        if live is not None:
            plan.changes.append(Unmount(
                action=action, path=action.path, held=held,
                summary=f"unmount {live.source} ({live.fstype}) from {action.path}"))
        return
    if live is None:
        plan.changes.append(Mount(action=action, path=action.path, summary=f"mount {what}",
                                  held=held))
    elif live.fstype != action.fstype or \
            live.source not in (action.device, mounts.device_path(ctx.system, action.device)):
        plan.changes.append(Replace(action=action, path=action.path, held=held, summary=(
            f"unmount {live.source} ({live.fstype}) and mount {what}")))
    else:
        old = live_entry.split()[3] if live_entry is not None and \
            len(live_entry.split()) > 3 else None
        contradicted = _contradicted(action.options, live.options)
        if contradicted or (old is not None and old != action.options):
            why = f"{', '.join(contradicted)} not in effect" if contradicted \
                else f"fstab said {old}"
            plan.changes.append(Remount(action=action, path=action.path, held=held, summary=(
                f"remount {action.path} with {action.options} ({why})")))


def _contradicted(wanted: str, live: str) -> list[str]:
    """Declared options the live mount visibly lacks (among those the kernel shows)."""
    shown = set(live.split(","))
    missing = [o for o in wanted.split(",") if o in _SHOWN and o not in shown]
    missing += [o for o in wanted.split(",") if o in _NEGATED and _NEGATED[o] in shown]
    return missing
