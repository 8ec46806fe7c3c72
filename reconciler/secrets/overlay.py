"""A snapshot with pending writes on top: `reconciler secret` compiles the fleet as it
will be after its edits, in memory, and writes nothing until every check passed."""

from __future__ import annotations

import os

from reconciler.atomicfile import write_atomic
from reconciler.source.snapshot import WorkTree, clean_relpath


class Overlay:
    """`base` (a working tree) as it reads once `pending` files are written."""

    revision: str | None = None

    def __init__(self, base: WorkTree) -> None:
        self.base = base
        self.label = base.label
        self.pending: dict[str, bytes] = {}

    def write(self, rel: str, data: bytes) -> None:
        self.pending[clean_relpath(rel)] = data

    def read(self, rel: str) -> bytes:
        found = self.pending.get(clean_relpath(rel))
        return found if found is not None else self.base.read(rel)

    def is_file(self, rel: str) -> bool:
        return clean_relpath(rel) in self.pending or self.base.is_file(rel)

    def is_dir(self, rel: str) -> bool:
        prefix = clean_relpath(rel) + "/"
        return self.base.is_dir(rel) or any(p.startswith(prefix) for p in self.pending)

    def listdir(self, rel: str) -> list[str]:
        prefix = clean_relpath(rel) + "/"
        extra = {p[len(prefix):].split("/", 1)[0] for p in self.pending if p.startswith(prefix)}
        return sorted(set(self.base.listdir(rel)) | extra)

    def commit(self) -> list[str]:
        """Write every pending file into the working tree (each atomically); their paths."""
        for rel, data in sorted(self.pending.items()):
            path = os.path.join(self.base.root, rel)
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            write_atomic(path, data, mode=0o644)
        return sorted(self.pending)

