"""Cross-checks of the parsed classes: duplicates within a class, .deb files that
exist, and inheritance chains without unknown parents or cycles."""

from __future__ import annotations

from reconciler.compile.chain import path_key
from reconciler.compile.inventory import CLASSES_DIR, TEMPLATES_DIR, ClassDecl
from reconciler.compile.nodeconfig import Action, PackageAction
from reconciler.errors import ConfigError, Problem
from reconciler.source.snapshot import Snapshot


def check_debs(snapshot: Snapshot, actions: list[Action], problems: list[Problem]) -> None:
    """A package's deb= names a file that must exist under templates/ at this revision."""
    for action in actions:
        if isinstance(action, PackageAction) and action.deb is not None:
            path = f"{TEMPLATES_DIR}/{action.deb}"
            try:
                found = snapshot.is_file(path)
            except ConfigError as exc:
                problems.extend(Problem(p.message, action.origin.path, action.origin.line,
                                        action=action.id) for p in exc.problems)
                continue
            if not found:
                problems.append(Problem(f"deb file {path} not found", action.origin.path,
                                        action.origin.line, action=action.id))


def check_classes(
    classes: dict[str, ClassDecl], broken: set[str], problems: list[Problem]
) -> None:
    """Every parent exists and no chain loops back on itself; each cycle and each unknown
    parent is reported once, where it is declared. Classes with a bad chain are dropped."""
    bad: set[str] = set()
    cycles: set[frozenset[str]] = set()
    for name in classes:
        seen = [name]
        current = classes[name].inherits
        while current is not None:
            if current not in classes:
                last = classes[seen[-1]]
                if current not in broken:
                    problems.append(Problem(f"class {last.name!r} inherits unknown class "
                                            f"{current!r} (no {CLASSES_DIR}/{current}.xml)",
                                            last.path, last.origin.line))
                bad.add(name)
                break
            if current in seen:
                loop = seen[seen.index(current):]
                if frozenset(loop) not in cycles:
                    cycles.add(frozenset(loop))
                    first = classes[loop[0]]
                    problems.append(Problem("class inheritance cycle: "
                                            + " -> ".join([*loop, current]),
                                            first.path, first.origin.line))
                bad.add(name)
                break
            seen.append(current)
            current = classes[current].inherits
    for name in bad:
        del classes[name]


def check_duplicates_in_class(actions: list[Action], problems: list[Problem]) -> None:
    by_id: dict[str, Action] = {}
    by_path: dict[str, Action] = {}
    for action in actions:
        key = path_key(action)
        previous = by_path.get(key) if key is not None else by_id.get(action.id)
        if previous is not None:
            what = f"path {key}" if key is not None else action.id
            problems.append(Problem(f"{what} is declared twice in this class "
                                    f"(also at line {previous.origin.line})",
                                    action.origin.path, action.origin.line))
        by_id[action.id] = action
        if key is not None:
            by_path[key] = action
