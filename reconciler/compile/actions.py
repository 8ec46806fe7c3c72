"""Action elements of a class file → their pydantic models (nodeconfig.py).

Each kind has a function turning its attributes into model fields; anything wrong is
recorded as a problem at the element's line.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from lxml import etree
from pydantic import ValidationError

from reconciler.compile import xmlload
from reconciler.compile.actions_node import NODE_KIND_FIELDS
from reconciler.compile.fields import check_node_path as _check_node_path
from reconciler.compile.fields import managed_path as _managed_path
from reconciler.compile.fields import mode as _mode
from reconciler.compile.fields import template_ref as _template_ref
from reconciler.compile.inventory import MAX_POLICY_SECONDS
from reconciler.compile.nodeconfig import (
    Action,
    AptSourceAction,
    AuthorizedKeysAction,
    BlockAction,
    Check,
    CommandAction,
    DirectoryAction,
    FileAction,
    GroupAction,
    LineAction,
    MountAction,
    Notify,
    PackageAction,
    ServiceAction,
    Severity,
    SymlinkAction,
    TreeAction,
    UserAction,
)
from reconciler.errors import Problem
from reconciler.source.snapshot import clean_relpath
from reconciler.system.candidate import has_candidate

DEFAULT_SEVERITY = {
    "file": Severity.NONE,
    "tree": Severity.NONE,
    "directory": Severity.NONE,
    "symlink": Severity.NONE,
    "package": Severity.RESTART,
    "service": Severity.RESTART,
    "command": Severity.RESTART,
    "group": Severity.NONE,
    "user": Severity.NONE,
    "authorized-keys": Severity.NONE,
    "apt-source": Severity.NONE,
    "mount": Severity.RESTART,  # of mounting and remounting; fstab edits alone are none
    "line": Severity.NONE,
    "block": Severity.NONE,
}


def _notify(raw: str) -> tuple[Notify, ...]:
    result = []
    for word in raw.split():
        kind, _, rest = word.partition(":")
        if kind == "service":
            name, _, verb = rest.rpartition(":")
            if verb in ("reload", "restart") and name:
                result.append(Notify(target=f"service:{name}", verb=verb))  # type: ignore[arg-type]
            else:
                result.append(Notify(target=f"service:{rest}", verb="restart"))
        elif kind == "command" and rest:
            result.append(Notify(target=word, verb="run"))
        else:
            raise ValueError(f"notify target {word!r} must be service:NAME[:reload|:restart] "
                             "or command:NAME")
    return tuple(result)


_ACTION_MODELS: dict[str, type[Action]] = {
    "file": FileAction,
    "tree": TreeAction,
    "directory": DirectoryAction,
    "symlink": SymlinkAction,
    "package": PackageAction,
    "service": ServiceAction,
    "command": CommandAction,
    "group": GroupAction,
    "user": UserAction,
    "authorized-keys": AuthorizedKeysAction,
    "apt-source": AptSourceAction,
    "mount": MountAction,
    "line": LineAction,
    "block": BlockAction,
}


def parse_action(
    doc: xmlload.XmlDoc, element: etree._Element, cls: str, problems: list[Problem]
) -> Action | None:
    """One action element → its model; any problem is recorded at the element's line."""
    kind = str(element.tag)
    model = _ACTION_MODELS.get(kind)
    if model is None:
        problems.append(doc.problem(element, f"unknown element <{kind}>"))
        return None
    try:
        severity = element.get("severity")
        fields: dict[str, Any] = {
            "kind": kind,
            "severity": Severity.parse(severity) if severity else DEFAULT_SEVERITY[kind],
            "requires": tuple(element.get("requires", "").split()),
            "notify": _notify(element.get("notify", "")),
            "origin": doc.origin(element),
            "declared_in": cls,
            "checks": _checks(doc, element),
            **_KIND_FIELDS[kind](element),
        }
        action: Action = model.model_validate(fields)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                           for e in exc.errors())
        problems.append(doc.problem(element, f"<{kind}>: {detail}"))
        return None
    except ValueError as exc:
        problems.append(doc.problem(element, f"<{kind}>: {exc}"))
        return None
    if action.id in action.requires:
        problems.append(doc.problem(element, f"{action.id} requires itself"))
    return action


def _checks(doc: xmlload.XmlDoc, element: etree._Element) -> tuple[Check, ...]:
    """The action's `<check run="…" timeout="…"/>` children, in order."""
    found = []
    for child in element.iterchildren("check"):
        run = child.get("run", "")
        _check_shell(run, "check run")
        timeout = float(child.get("timeout", "60"))
        if timeout > MAX_POLICY_SECONDS:
            raise ValueError(f"check timeout is too large (at most {MAX_POLICY_SECONDS}s)")
        found.append(Check(run=run, timeout=timeout, origin=doc.origin(child)))
    return tuple(found)


def _ownership(element: etree._Element) -> dict[str, Any]:
    return {"owner": element.get("owner"), "group": element.get("group")}


def _file_fields(element: etree._Element) -> dict[str, Any]:
    path = _managed_path(element.get("path", ""))
    content = element.find("content")
    fields: dict[str, Any] = {
        "id": f"file:{path}", "path": path, "ensure": element.get("ensure", "present"),
        "template": _template_ref(element.get("template"), "template"),
        "source": _template_ref(element.get("source"), "source"),
        "content": (content.text or "") if content is not None else None,
        "mode": _mode(element.get("mode")), "validate_cmd": element.get("validate"),
        "secret": element.get("secret") == "true", **_ownership(element),
    }
    if fields["ensure"] == "present" and all(
            fields[k] is None for k in ("template", "source", "content")):
        raise ValueError("a present file needs template=, source= or <content>")
    if fields["validate_cmd"] is not None:
        if not has_candidate(fields["validate_cmd"]):
            raise ValueError("validate= must contain %s (the new file's path; %% is a "
                             "percent sign)")
        _check_shell(fields["validate_cmd"], "validate")
    return fields


def _check_shell(command: str, attribute: str) -> None:
    """Refuse a shell command whose quoting is broken: it could only fail on the node."""
    try:
        shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"{attribute}= is not a valid shell command: {exc}") from None


def _tree_fields(element: etree._Element) -> dict[str, Any]:
    path = _managed_path(element.get("path", ""))
    return {
        "id": f"tree:{path}", "path": path,
        "source": clean_relpath(element.get("source", ""), "source"),
        "mode": _mode(element.get("mode")), "dir_mode": _mode(element.get("dir-mode")),
        "secret": element.get("secret") == "true", **_ownership(element),
    }


def _directory_fields(element: etree._Element) -> dict[str, Any]:
    path = _managed_path(element.get("path", ""))
    purge = element.get("purge") == "true"
    return {"id": f"directory:{path}", "path": path, "ensure": element.get("ensure", "present"),
            "mode": _mode(element.get("mode")), "purge": purge, **_ownership(element)}


def _symlink_fields(element: etree._Element) -> dict[str, Any]:
    path = _managed_path(element.get("path", ""))
    ensure = element.get("ensure", "present")
    target = element.get("target", "")
    if ensure == "present" and not target:
        raise ValueError("a present symlink needs target=")
    if "\0" in target:
        raise ValueError("symlink target contains a NUL byte")
    return {"id": f"symlink:{path}", "path": path, "target": target, "ensure": ensure,
            **_ownership(element)}


def _package_fields(element: etree._Element) -> dict[str, Any]:
    name = element.get("name", "")
    if element.get("hold") == "true" and element.get("ensure") == "absent":
        raise ValueError("a package declared absent cannot be held")
    return {"id": f"package:{name}", "name": name, "ensure": element.get("ensure", "present"),
            "version": element.get("version"), "deb": _template_ref(element.get("deb"), "deb"),
            "hold": None if element.get("hold") is None else element.get("hold") == "true"}


def _service_fields(element: etree._Element) -> dict[str, Any]:
    name = element.get("name", "")
    state = element.get("state", "running")
    enabled = element.get("enabled")
    backend = element.get("backend", "systemd")
    commands = None
    if backend == "command":
        commands = {str(child.tag).replace("-", "_"): (child.text or "").strip()
                    for child in element if isinstance(child.tag, str) and child.tag != "check"}
    return {"id": f"service:{name}", "name": name,
            "state": None if state == "unmanaged" else state,
            "enabled": None if enabled is None else enabled == "true",
            "backend": backend, "commands": commands}


def _command_fields(element: etree._Element) -> dict[str, Any]:
    name = element.get("name", "")
    creates = element.get("creates")
    cwd = element.get("cwd")
    for attribute in ("run", "unless", "onlyif"):
        command = element.get(attribute)
        if command is not None:
            _check_shell(command, attribute)
    timeout = float(element.get("timeout", "300"))
    if timeout > MAX_POLICY_SECONDS:
        raise ValueError(f"timeout is too large (at most {MAX_POLICY_SECONDS}s)")
    return {
        "id": f"command:{name}", "name": name, "run": element.get("run", ""),
        "creates": _check_node_path(creates) if creates is not None else None,
        "unless": element.get("unless"), "onlyif": element.get("onlyif"),
        "refresh_only": element.get("refresh-only") == "true",
        "timeout": timeout,
        "cwd": _check_node_path(cwd) if cwd is not None else None,
        "env": tuple((env.get("name", ""), env.text or "")
                     for env in element.iterchildren("env")),
    }


_KIND_FIELDS: dict[str, Callable[[etree._Element], dict[str, Any]]] = {
    "file": _file_fields,
    "tree": _tree_fields,
    "directory": _directory_fields,
    "symlink": _symlink_fields,
    "package": _package_fields,
    "service": _service_fields,
    "command": _command_fields,
    **NODE_KIND_FIELDS,
}
