"""Facts that nodes published, for the commands that run away from them.

`validate`, `plan` and `render` cannot read a remote machine's /proc. Given the facts
each node last published they render with those; a node without any gets placeholders
(render/facts.py), and its facts-dependent files say so. A facts directory holds one
`<node>.json` per node, each what `reconciler facts --format json` printed on it.
"""

from __future__ import annotations

import os

from pydantic import ValidationError

from reconciler.compile import names
from reconciler.errors import ConfigError, Problem, UsageError
from reconciler.facts.model import Facts

MAX_FILE = 1 << 20


def load_directory(path: str) -> dict[str, Facts]:
    """Facts by node name from `path/<node>.json`; every bad file is a problem."""
    try:
        entries = sorted(os.listdir(path))
    except OSError as exc:
        raise UsageError.because(f"cannot read the facts directory {path}: "
                                 f"{exc.strerror or exc}") from None
    found: dict[str, Facts] = {}
    problems: list[Problem] = []
    for entry in entries:
        if not entry.endswith(".json"):
            continue
        node = entry[: -len(".json")]
        file = os.path.join(path, entry)
        try:
            names.parse(node)
            with open(file, "rb") as handle:
                data = handle.read(MAX_FILE + 1)
            if len(data) > MAX_FILE:
                raise ValueError(f"larger than {MAX_FILE} bytes")
            found[node] = Facts.model_validate_json(data)
        except names.NodeNameError as exc:
            problems.append(Problem(f"not named for a node: {exc}", file))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            problems.append(Problem(f"not facts: {where}: {first['msg']}" if where else
                                    f"not facts: {first['msg']}", file))
        except (OSError, ValueError) as exc:
            problems.append(Problem(f"cannot read facts: {exc}", file))
    if problems:
        raise ConfigError(problems)
    return found
