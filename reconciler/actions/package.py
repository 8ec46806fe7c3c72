"""Package actions: Debian packages through dpkg-query, apt-get, or a .deb from the repo."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from reconciler.actions.apt_source import wants_lists
from reconciler.compile.layout import TEMPLATES_DIR
from reconciler.compile.nodeconfig import PackageAction
from reconciler.host import apt
from reconciler.host import dpkg as packages
from reconciler.plan.change import ApplyContext, Change, Effect, HostOnly, Removed, Wrote
from reconciler.plan.probe import ActionPlan, Context
from reconciler.record.applied import Applied
from reconciler.system.interface import System

ARCHIVES_HOST_ONLY = HostOnly("apt-get installs only on the running system, not under --root "
                              "(a package with deb= can be installed there)")


def _deb_file(
    system: System, read_repo: Callable[[str], bytes], action: PackageAction
) -> AbstractContextManager[str]:
    """The repo's .deb as a host file (dpkg needs a path): a scratch file of the System,
    outside the root and the state directory, removed afterwards."""
    assert action.deb is not None
    data = read_repo(f"{TEMPLATES_DIR}/{action.deb}")
    return system.scratch_file(posixpath.basename(action.deb), data)


def record(action_id: str, commit: str | None) -> Applied:
    """What the last-applied state keeps of a package: that this node declared it."""
    return Applied(type="package", action=action_id, commit=commit)


@dataclass(frozen=True, kw_only=True)
class InstallPackage(Change):
    """Install, upgrade or reinstall the package: from the repo's .deb, else with apt-get."""

    op = "install"
    action: PackageAction
    reinstall: bool = False  # the package is half-installed: ask apt to reinstall it

    def apply(self, ctx: ApplyContext) -> Effect:
        action = self.action
        if action.deb is None:
            packages.install(ctx.system, action.name, action.version, reinstall=self.reinstall)
        else:
            with _deb_file(ctx.system, ctx.read_repo, action) as deb:
                packages.install(ctx.system, action.name, action.version, deb,
                                 reinstall=self.reinstall)
        return Wrote(action.id, record(action.id, ctx.commit))


@dataclass(frozen=True, kw_only=True)
class RemovePackage(Change):
    """Remove the package (its conffiles stay); dpkg refuses while others depend on it."""

    op = "remove"
    name: str

    def apply(self, ctx: ApplyContext) -> Effect:
        packages.remove(ctx.system, self.name)
        return Removed(f"package:{self.name}")


@dataclass(frozen=True, kw_only=True)
class HoldPackage(Change):
    """apt-mark hold (or unhold): upgrades leave a held package at its version."""

    op = "hold"
    action: PackageAction
    hold: bool

    def apply(self, ctx: ApplyContext) -> Effect:
        apt.mark(ctx.system, self.action.name, self.hold)
        return None


def probe(ctx: Context, action: PackageAction) -> ActionPlan:
    """What dpkg says is installed against the wanted version (a .deb's own, when not
    given), and whether it is held as wanted."""
    plan = ActionPlan(action)
    installed = packages.query(ctx.system, action.name)
    if action.ensure == "absent":
        if installed is not None:
            plan.changes.append(RemovePackage(
                action=action, summary=f"remove {action.name} {installed.version}",
                name=action.name))
        return plan
    wanted = action.version
    if action.deb is not None and wanted is None:
        with _deb_file(ctx.system, ctx.read_repo, action) as deb:
            wanted = packages.read_deb(ctx.system, deb)[1]
    # apt-get cannot install into another root: say what would be done instead of failing.
    held = ARCHIVES_HOST_ONLY if action.deb is None and ctx.system.root != "/" else None
    install: InstallPackage | None = None
    if installed is None:
        install = InstallPackage(action=action, summary=f"install {action.name}"
                                 + (f" {wanted}" if wanted else ""), held=held)
    elif not installed.installed:
        install = InstallPackage(action=action, held=held, reinstall=True,
                                 summary=f"reinstall {action.name} ({installed.state})")
    elif not packages.version_matches(installed.version, wanted):
        install = InstallPackage(action=action, held=held,
                                 summary=f"change {action.name} {installed.version} → {wanted}")
    if install is not None:
        refresh = wants_lists(ctx, action) if action.deb is None else None
        plan.changes += [*([refresh] if refresh else []), install]
    _probe_hold(plan, action, installed, install)
    if not plan.changes:
        previous = ctx.applied.get(action.id)
        plan.in_sync[action.id] = record(action.id, previous.commit if previous else ctx.commit)
    return plan


def _probe_hold(plan: ActionPlan, action: PackageAction,
                installed: packages.InstalledPackage | None,
                install: InstallPackage | None) -> None:
    """Hold or unhold as declared, once the package is installed (held with its install)."""
    is_held = installed is not None and installed.status[:1] == "h"
    if action.hold is None or action.hold == is_held:
        return
    verb = "hold" if action.hold else "unhold"
    plan.changes.append(HoldPackage(action=action, summary=f"{verb} {action.name}",
                                    held=install.held if install is not None else None,
                                    hold=action.hold))
