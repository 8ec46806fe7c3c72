"""Package actions: Debian packages through dpkg-query, apt-get, or a .deb from the repo."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.compile.inventory import TEMPLATES_DIR
from reconciler.compile.nodeconfig import PackageAction
from reconciler.host import dpkg as packages
from reconciler.plan.build import ActionPlan, Change, Context

ARCHIVES_HOST_ONLY = "apt-get installs only on the running system, not under --root " \
                     "(a package with deb= can be installed there)"


@contextmanager
def _deb_file(ctx: Context, action: PackageAction) -> Iterator[str]:
    """The repo's .deb as a host file (dpkg needs a path), in a private scratch directory.

    The scratch directory is outside the root and the state directory, so an audit
    writes nothing there; it is removed afterwards.
    """
    assert action.deb is not None
    data: bytes = ctx.read_repo(f"{TEMPLATES_DIR}/{action.deb}")
    with tempfile.TemporaryDirectory(prefix="reconciler-deb-") as scratch:
        path = os.path.join(scratch, os.path.basename(action.deb))
        with open(path, "wb") as handle:
            handle.write(data)
        yield path


def check(ctx: Context, action: PackageAction) -> ActionPlan:
    plan = ActionPlan(action)
    installed = packages.query(ctx.system, action.name)
    if action.ensure == "absent":
        if installed is not None:
            plan.changes.append(Change(action, "remove", f"remove {action.name} "
                                                         f"{installed.version}"))
        return plan
    wanted = action.version
    if action.deb is not None and wanted is None:
        with _deb_file(ctx, action) as deb:
            wanted = packages.read_deb(ctx.system, deb)[1]
    # apt-get cannot install into another root: say what would be done instead of failing.
    held = ARCHIVES_HOST_ONLY if action.deb is None and ctx.system.root != "/" else None
    if installed is None:
        plan.changes.append(Change(action, "install",
                                   f"install {action.name}" + (f" {wanted}" if wanted else ""),
                                   held=held))
    elif not installed.installed:
        plan.changes.append(Change(action, "install",
                                   f"reinstall {action.name} ({installed.state})",
                                   held=held, args={"reinstall": True}))
    elif not packages.version_matches(installed.version, wanted):
        plan.changes.append(Change(action, "install",
                                   f"change {action.name} {installed.version} → {wanted}",
                                   held=held))
    return plan


def apply(ctx: Context, change: Change) -> None:
    action = change.action
    assert isinstance(action, PackageAction)
    if change.op == "remove":
        packages.remove(ctx.system, action.name)
        return
    if action.deb is None:
        packages.install(ctx.system, action.name, action.version,
                         reinstall=bool(change.args.get("reinstall")))
        return
    with _deb_file(ctx, action) as deb:
        packages.install(ctx.system, action.name, action.version, deb,
                         reinstall=bool(change.args.get("reinstall")))
