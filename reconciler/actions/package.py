"""Package actions: Debian packages through dpkg-query, apt-get, or a .deb from the repo."""

from __future__ import annotations

import os
import tempfile

from reconciler import packages
from reconciler.compile import TEMPLATES_DIR
from reconciler.config import PackageAction
from reconciler.plan import ActionPlan, Change, Context


def _deb_file(ctx: Context, action: PackageAction) -> str:
    """The repo's .deb copied to a host file under the state directory (dpkg needs a path)."""
    assert action.deb is not None
    data: bytes = ctx.read_repo(f"{TEMPLATES_DIR}/{action.deb}")
    directory = os.path.join(ctx.state_dir, "debs")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, path = tempfile.mkstemp(suffix=".deb", prefix=f"{action.name}-", dir=directory)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


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
        deb = _deb_file(ctx, action)
        try:
            wanted = packages.read_deb(ctx.system, deb)[1]
        finally:
            os.unlink(deb)
    if installed is None:
        plan.changes.append(Change(action, "install",
                                   f"install {action.name}" + (f" {wanted}" if wanted else "")))
    elif not installed.installed:
        plan.changes.append(Change(action, "install",
                                   f"reinstall {action.name} ({installed.state})",
                                   args={"reinstall": True}))
    elif not packages.version_matches(installed.version, wanted):
        plan.changes.append(Change(action, "install",
                                   f"change {action.name} {installed.version} → {wanted}"))
    return plan


def apply(ctx: Context, change: Change) -> None:
    action = change.action
    assert isinstance(action, PackageAction)
    if change.op == "remove":
        packages.remove(ctx.system, action.name)
        return
    deb = _deb_file(ctx, action) if action.deb is not None else None
    try:
        packages.install(ctx.system, action.name, action.version, deb,
                         reinstall=bool(change.args.get("reinstall")))
    finally:
        if deb is not None:
            os.unlink(deb)
