"""Package actions: Debian packages through dpkg-query, apt-get, or a .deb from the repo."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from reconciler.compile.inventory import TEMPLATES_DIR
from reconciler.compile.nodeconfig import PackageAction
from reconciler.host import dpkg as packages
from reconciler.plan.change import ApplyContext, Change, Effect
from reconciler.plan.probe import ActionPlan, Context
from reconciler.system.interface import System

ARCHIVES_HOST_ONLY = "apt-get installs only on the running system, not under --root " \
                     "(a package with deb= can be installed there)"


def _deb_file(
    system: System, read_repo: Callable[[str], bytes], action: PackageAction
) -> AbstractContextManager[str]:
    """The repo's .deb as a host file (dpkg needs a path): a scratch file of the System,
    outside the root and the state directory, removed afterwards."""
    assert action.deb is not None
    data = read_repo(f"{TEMPLATES_DIR}/{action.deb}")
    return system.scratch_file(posixpath.basename(action.deb), data)


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
            return None
        with _deb_file(ctx.system, ctx.read_repo, action) as deb:
            packages.install(ctx.system, action.name, action.version, deb,
                             reinstall=self.reinstall)
        return None


@dataclass(frozen=True, kw_only=True)
class RemovePackage(Change):
    """Remove the package (its conffiles stay); dpkg refuses while others depend on it."""

    op = "remove"
    action: PackageAction

    def apply(self, ctx: ApplyContext) -> Effect:
        packages.remove(ctx.system, self.action.name)
        return None


def probe(ctx: Context, action: PackageAction) -> ActionPlan:
    """What dpkg says is installed against the wanted version (a .deb's own, when not given)."""
    plan = ActionPlan(action)
    installed = packages.query(ctx.system, action.name)
    if action.ensure == "absent":
        if installed is not None:
            plan.changes.append(RemovePackage(
                action=action, summary=f"remove {action.name} {installed.version}"))
        return plan
    wanted = action.version
    if action.deb is not None and wanted is None:
        with _deb_file(ctx.system, ctx.read_repo, action) as deb:
            wanted = packages.read_deb(ctx.system, deb)[1]
    # apt-get cannot install into another root: say what would be done instead of failing.
    held = ARCHIVES_HOST_ONLY if action.deb is None and ctx.system.root != "/" else None
    if installed is None:
        summary = f"install {action.name}" + (f" {wanted}" if wanted else "")
    elif not installed.installed:
        plan.changes.append(InstallPackage(
            action=action, summary=f"reinstall {action.name} ({installed.state})", held=held,
            reinstall=True))
        return plan
    elif not packages.version_matches(installed.version, wanted):
        summary = f"change {action.name} {installed.version} → {wanted}"
    else:
        return plan
    plan.changes.append(InstallPackage(action=action, summary=summary, held=held))
    return plan
