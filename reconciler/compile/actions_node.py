"""Elements of the actions that edit the node's own databases → model fields: groups,
users, authorized keys, APT sources, mounts, and lines or blocks of files.

Like actions.py, each function raises ValueError saying what is wrong; the caller puts
it at the element's line. Files these actions read from the repo are checked later,
with the snapshot (repofiles.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lxml import etree

from reconciler.compile.fields import boolean, check_node_path, managed_path, template_ref, words
from reconciler.compile.sshkeys import check_key

# What useradd accepts and Debian's adduser recommends: no leading '-', not all digits.
_ACCOUNT = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_URI = re.compile(r"[a-z][a-z0-9+.-]*:\S+")
_MAX_ID = 2**32 - 2  # (uid_t) -1 means "no change" to the kernel


def _account(raw: str, what: str) -> str:
    if not _ACCOUNT.fullmatch(raw):
        raise ValueError(f"{what} {raw!r} is not a valid account name "
                         "(lower case letters, digits, '_', '-', '.'; not starting with a digit "
                         "or '-')")
    return raw


def _number(raw: str | None, what: str, most: int = _MAX_ID) -> int | None:
    if raw is None:
        return None
    value = int(raw)
    if not 0 <= value <= most:
        raise ValueError(f"{what} {value} is out of range (0 to {most})")
    return value


def _no_space(raw: str, what: str) -> str:
    if not raw or any(char.isspace() for char in raw):
        raise ValueError(f"{what} {raw!r} must be one word, without spaces")
    return raw


def _name(raw: str, what: str = "name") -> str:
    if not _NAME.fullmatch(raw):
        raise ValueError(f"{what} {raw!r} may hold only letters, digits, '_', '.' and '-'")
    return raw


def group_fields(element: etree._Element) -> dict[str, Any]:
    name = _account(element.get("name", ""), "group name")
    return {"id": f"group:{name}", "name": name, "ensure": element.get("ensure", "present"),
            "gid": _number(element.get("gid"), "gid"),
            "system": boolean(element.get("system")) or False}


def user_fields(element: etree._Element) -> dict[str, Any]:
    name = _account(element.get("name", ""), "user name")
    group = element.get("group")
    if group is not None and not group.isdigit():
        _account(group, "group")
    groups = words(element.get("groups"))
    for member_of in groups or ():
        _account(member_of, "group")
    home = element.get("home")
    shell = element.get("shell")
    comment = element.get("comment")
    if shell is not None and (not shell.startswith("/") or ":" in shell):
        raise ValueError(f"shell {shell!r} must be an absolute path")
    if comment is not None and (":" in comment or "\n" in comment):
        raise ValueError("comment must not hold ':' or a newline (they end a passwd field)")
    return {"id": f"user:{name}", "name": name, "ensure": element.get("ensure", "present"),
            "uid": _number(element.get("uid"), "uid"), "group": group, "groups": groups,
            "home": check_node_path(home) if home is not None else None, "shell": shell,
            "comment": comment, "system": boolean(element.get("system")) or False}


def authorized_keys_fields(element: etree._Element) -> dict[str, Any]:
    user = _account(element.get("user", ""), "user")
    path = element.get("path")
    keys: list[str] = []
    sources: list[str] = []
    for key in element.iterchildren("key"):
        source = key.get("source")
        if source is not None:
            sources.append(template_ref(source, "key source") or "")
        else:
            keys.append(check_key(key.text or ""))
    return {"id": f"authorized-keys:{user}", "user": user, "keys": tuple(keys),
            "key_sources": tuple(sources), "exclusive": boolean(element.get("exclusive")) or False,
            "path": check_node_path(path) if path is not None else None}


def apt_source_fields(element: etree._Element) -> dict[str, Any]:
    name = _name(element.get("name", ""))
    ensure = element.get("ensure", "present")
    uris = words(element.get("uris")) or ()
    suites = words(element.get("suites")) or ()
    components = words(element.get("components")) or ()
    key = template_ref(element.get("key"), "key")
    if ensure == "present":
        if not uris or not suites:
            raise ValueError("a present apt-source needs uris= and suites=")
        for uri in uris:
            if not _URI.fullmatch(uri):
                raise ValueError(f"{uri!r} is not a URI (scheme:...)")
        flat = [suite for suite in suites if suite.endswith("/")]
        if flat and (components or len(flat) != len(suites)):
            raise ValueError("a flat repository (a suite ending in '/') takes no components= "
                             "and no other suites")
        if not flat and not components:
            raise ValueError("components= is needed unless the suite is a flat path "
                             "ending in '/'")
    if key is not None and not key.endswith((".asc", ".gpg")):
        raise ValueError(f"key {key!r} must be an armored .asc or a binary .gpg keyring")
    pins = []
    for pin in element.iterchildren("pin"):
        packages = pin.get("packages", "")
        if not packages.strip():
            raise ValueError("<pin> needs packages=")
        pins.append({"packages": " ".join(packages.split()),
                     "priority": int(pin.get("priority", "500")), "version": pin.get("version")})
    types = words(element.get("types")) or ("deb",)
    return {"id": f"apt-source:{name}", "name": name, "ensure": ensure, "types": types,
            "uris": uris, "suites": suites, "components": components,
            "architectures": words(element.get("architectures")) or (), "key": key,
            "pins": tuple(pins)}


def mount_fields(element: etree._Element) -> dict[str, Any]:
    path = check_node_path(element.get("path", ""))
    if path == "/":
        raise ValueError("the root filesystem is not a mount reconciler can manage")
    state = element.get("state", "mounted")
    device = element.get("device", "")
    fstype = element.get("fstype", "")
    options = element.get("options", "defaults")
    if state != "absent":
        _no_space(device, "device")
        _no_space(fstype, "fstype")
    _no_space(options, "options")
    return {"id": f"mount:{path}", "path": path, "device": device, "fstype": fstype,
            "options": options, "dump": _number(element.get("dump", "0"), "dump", 9),
            "fsck_pass": _number(element.get("pass", "0"), "pass", 9), "state": state}


def line_fields(element: etree._Element) -> dict[str, Any]:
    path = managed_path(element.get("path", ""))
    name = _name(element.get("name", ""))
    ensure = element.get("ensure", "present")
    line = element.get("line")
    match = element.get("match")
    if line is not None and ("\n" in line or "\r" in line):
        raise ValueError("line= must be a single line")
    if ensure == "present" and line is None:
        raise ValueError("a present line needs line=")
    if ensure == "absent" and line is None and match is None:
        raise ValueError("an absent line needs line= or match=")
    if match is not None:
        try:
            re.compile(match)
        except re.error as exc:
            raise ValueError(f"match= is not a valid regular expression: {exc}") from None
    return {"id": f"line:{path}#{name}", "path": path, "name": name, "line": line or "",
            "match": match, "ensure": ensure}


def block_fields(element: etree._Element) -> dict[str, Any]:
    path = managed_path(element.get("path", ""))
    name = _name(element.get("name", ""))
    ensure = element.get("ensure", "present")
    comment = element.get("comment", "#")
    _no_space(comment, "comment")
    content = element.find("content")
    source = template_ref(element.get("source"), "source")
    if ensure == "present" and content is None and source is None:
        raise ValueError("a present block needs source= or <content>")
    return {"id": f"block:{path}#{name}", "path": path, "name": name,
            "content": (content.text or "") if content is not None else "", "source": source,
            "comment": comment, "ensure": ensure}


NODE_KIND_FIELDS: dict[str, Callable[[etree._Element], dict[str, Any]]] = {
    "group": group_fields,
    "user": user_fields,
    "authorized-keys": authorized_keys_fields,
    "apt-source": apt_source_fields,
    "mount": mount_fields,
    "line": line_fields,
    "block": block_fields,
}
