"""Compiled templates kept between a node's runs, in one pack file, with what each
template's text says (render/sources.py)."""

from __future__ import annotations

import hashlib
import marshal
import os
import tempfile
from contextlib import suppress

import jinja2
from jinja2.bccache import Bucket, BytecodeCache, bc_magic

from reconciler.atomicfile import read_own
from reconciler.render.sources import Analysis


class PackedBytecodeCache(BytecodeCache):
    """Compiled templates kept between runs in one file, read once and written only
    when something was compiled.

    Jinja2's own FileSystemBytecodeCache reads one file per template through
    `marshal.load` on a file object, which costs more than the rendering itself for a
    node with a thousand templates. Entries are keyed like Jinja2's (template name) and
    checked against the source's checksum; a file that does not verify (other Python
    or Jinja2, torn write) is ignored and rewritten, so it needs no fsync. What each
    template's text says (render/sources.py) is kept by the same checksum, as long as
    a compiled template has that text: the pack does not grow with every edit.
    """

    FILE = "templates.pack"
    MAGIC = b"reconciler-templates-3 " + jinja2.__version__.encode() + b" " + bc_magic

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, self.FILE)
        self._pack: tuple[dict[str, tuple[str, bytes]], dict[str, Analysis]] | None = None
        self._changed = False

    def _loaded(self) -> dict[str, tuple[str, bytes]]:
        return self._both()[0]

    def _both(self) -> tuple[dict[str, tuple[str, bytes]], dict[str, Analysis]]:
        if self._pack is None:
            self._pack = self._read()
        return self._pack

    def _read(self) -> tuple[dict[str, tuple[str, bytes]], dict[str, Analysis]]:
        try:
            data = read_own(self.path)
        except OSError:
            return {}, {}
        header = len(self.MAGIC)
        digest, payload = data[header:header + 32], data[header + 32:]
        if data[:header] != self.MAGIC or hashlib.sha256(payload).digest() != digest:
            return {}, {}
        try:
            pack = marshal.loads(payload)
        except (EOFError, ValueError, TypeError):
            return {}, {}
        if not (isinstance(pack, tuple) and len(pack) == 2
                and all(isinstance(part, dict) for part in pack)):
            return {}, {}
        return pack[0], pack[1]

    def analysis(self, digest: str) -> Analysis | None:
        """What the template text of this digest says, when a run kept it."""
        return self._both()[1].get(digest)

    def keep_analysis(self, digest: str, analysis: Analysis) -> None:
        """Keep what a template text says, when it says more than what is kept."""
        analyses = self._both()[1]
        if analyses.get(digest) != analysis and (analysis[2] is not None
                                                 or digest not in analyses):
            analyses[digest] = analysis
            self._changed = True

    def load_bytecode(self, bucket: Bucket) -> None:
        entry = self._loaded().get(bucket.key)
        if entry is None or entry[0] != bucket.checksum:
            return
        try:
            bucket.code = marshal.loads(entry[1])
        except (EOFError, ValueError, TypeError):
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        if bucket.code is None:
            return
        self._loaded()[bucket.key] = (bucket.checksum, marshal.dumps(bucket.code))
        self._changed = True

    def save(self) -> None:
        """Write the cache back if this run compiled anything (atomically, mode 0600).

        A cache that cannot be written only costs the next run a recompile, so an
        OSError here is not the run's failure.
        """
        if not self._changed or self._pack is None:
            return
        entries, analyses = self._pack
        texts = {checksum for checksum, _ in entries.values()}
        payload = marshal.dumps((entries, {digest: analysis for digest, analysis
                                           in analyses.items() if digest in texts}))
        try:
            fd, temp = tempfile.mkstemp(prefix=".templates-", dir=os.path.dirname(self.path))
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self.MAGIC + hashlib.sha256(payload).digest() + payload)
            os.rename(temp, self.path)
        except OSError:
            with suppress(OSError):
                os.unlink(temp)
            return
        self._changed = False
