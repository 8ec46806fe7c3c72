"""Compiled templates kept between runs in one pack file under the state directory."""

from __future__ import annotations

from pathlib import Path

from configrepo import BASIC, Workspace

from reconciler.compile.compiler import load_fleet
from reconciler.render import sources
from reconciler.render.bytecode import PackedBytecodeCache
from reconciler.render.renderer import Renderer
from reconciler.render.sources import Analysis
from reconciler.run import desire
from reconciler.source.snapshot import open_snapshot

NODE = "web-01.tickets.chi1.sa"
MOTD = "base/motd.j2"


def motd(repo: Path, cache: Path, rev: str = "HEAD") -> bytes | None:
    """The node's rendered /etc/motd, compiling through the pack in `cache`."""
    desired = desire(load_fleet(open_snapshot(str(repo), rev)), NODE, bytecode_dir=str(cache))
    return desired.rendered["file:/etc/motd"][0].content


def served_from_pack(repo: Path, cache: Path, rev: str = "HEAD") -> bool:
    """Whether a fresh cache on `cache` holds bytecode for motd.j2's source at `rev`."""
    fleet = load_fleet(open_snapshot(str(repo), rev))
    renderer = Renderer(fleet)
    source = fleet.snapshot.read(f"templates/{MOTD}").decode()
    bucket = PackedBytecodeCache(str(cache)).get_bucket(renderer.env, MOTD,
                                                        f"templates/{MOTD}", source)
    return bucket.code is not None


def test_compiled_templates_are_kept_in_one_private_pack(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    cache = ws.tmp / "state/cache/templates"

    assert motd(repo, cache) == b"hello from web-01.tickets.chi1.sa\n"

    assert [p.name for p in cache.iterdir()] == [PackedBytecodeCache.FILE]
    assert (cache / PackedBytecodeCache.FILE).stat().st_mode & 0o777 == 0o600
    assert served_from_pack(repo, cache)


def test_a_template_changed_at_a_new_commit_renders_its_new_source(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    cache = ws.tmp / "cache"
    motd(repo, cache)
    ws.write(repo, {f"templates/{MOTD}": "bye from {{ node.host }}\n"})
    ws.commit(repo, "new motd")

    assert motd(repo, cache) == b"bye from web-01\n"
    assert motd(repo, cache, "HEAD~1") == b"hello from web-01.tickets.chi1.sa\n"
    assert served_from_pack(repo, cache, "HEAD~1")


def test_a_corrupt_pack_is_ignored_and_rewritten(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    cache = ws.tmp / "cache"
    motd(repo, cache)
    pack = cache / PackedBytecodeCache.FILE
    pack.write_bytes(pack.read_bytes()[:-40] + b"\0" * 40)

    assert motd(repo, cache) == b"hello from web-01.tickets.chi1.sa\n"
    assert served_from_pack(repo, cache)


def kept_analysis(repo: Path, cache: Path, rev: str = "HEAD") -> Analysis | None:
    """What the pack in `cache` keeps of what motd.j2 says at `rev`."""
    text = load_fleet(open_snapshot(str(repo), rev)).snapshot.read(f"templates/{MOTD}")
    return PackedBytecodeCache(str(cache)).analysis(sources.text_digest(text.decode()))


def test_what_a_template_reads_is_kept_in_the_pack_for_the_next_run(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    cache = ws.tmp / "cache"
    fleet = load_fleet(open_snapshot(str(repo), "HEAD"))
    renderer = Renderer(fleet, bytecode_dir=str(cache))
    renderer.template(MOTD)
    assert renderer.referenced(MOTD) == (frozenset({"greeting", "node"}), False)
    renderer.save_cache()

    assert kept_analysis(repo, cache) == ((), False, frozenset({"greeting", "node"}))
    sources._SOURCES.clear()  # as in a new process
    again = Renderer(fleet, bytecode_dir=str(cache))
    assert again.referenced(MOTD) == (frozenset({"greeting", "node"}), False)
    assert again.source(MOTD).analysis() == ((), False, frozenset({"greeting", "node"}))


def test_what_an_old_text_said_leaves_the_pack_with_its_compiled_code(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    cache = ws.tmp / "cache"
    motd(repo, cache)
    first = Renderer(load_fleet(open_snapshot(str(repo), "HEAD")), bytecode_dir=str(cache))
    first.referenced(MOTD)
    first.save_cache()
    assert kept_analysis(repo, cache) is not None
    ws.write(repo, {f"templates/{MOTD}": "bye from {{ node.host }}\n"})
    ws.commit(repo, "new motd")

    assert motd(repo, cache) == b"bye from web-01\n"
    assert kept_analysis(repo, cache, "HEAD~1") is None
