"""The `reconciler` command. A plain `apply` or `audit` from a working tree is first
answered by the quiet cycle (`quiet.py`) when nothing changed, and a plain `audit` to a
pipe when it finds just what the last one found (record/repeat.py), before the command
line interface and the engine are even imported; everything else goes to `reconciler.cli`.
Ctrl-C while that is still being imported ends as quietly as Ctrl-C during a command:
`interrupted`, exit 130, no traceback. This module imports almost nothing itself, so the
instant before `main` can catch Ctrl-C is as short as it can be."""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from reconciler.quiet import Drifted
    from reconciler.statedir import StateDir

_VALUED = {"--repo", "--node", "--root", "--state-dir", "--max-severity", "--identity",
           "--wait", "--format"}
_FLAGS = {"--host-commands", "--no-host-commands"}


def main() -> None:
    # No third-party code rides along: an installed package that declares a pydantic plugin
    # would be imported and called whenever a model is built, in a process that runs as
    # root. Looking for plugins also reads every installed package's metadata (50 ms).
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
    _no_plugin_search()
    if sys.argv[1:2] in (["apply"], ["audit"], ["plan"]):
        # One run, which goes without the cyclic collector (`cli/node.py`; a plan's
        # workers turn it back on, review/workers.py), then the process ends: before the
        # run, the collector would only scan again and again what the imports build (a
        # tenth of their time), all of it alive to the end.
        gc.disable()
    with _NoLostInterrupt():
        try:
            code = quiet_run(sys.argv[1:])
            if code is None and sys.argv[1:2] == ["run"]:
                from reconciler.quietrun import quiet_run as quiet_run_of_run

                code = quiet_run_of_run(sys.argv[1:])
            if code is not None:
                sys.exit(code)
            from reconciler.cli import main as cli

            cli()  # which ends with what it built frozen, out of the last collections
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            sys.exit(128 + signal.SIGINT)


def _no_plugin_search() -> None:
    """pydantic's plugin loader, answering as it does with plugins disabled (none), but
    without importing what it would search them with: importlib.metadata and the email
    parser, 11 ms of every process that builds a model. pydantic imports the loader when
    it builds its first model, and takes this one; only while the one module that imports
    it asks it for `get_plugins` alone (a private module: another pydantic may differ)."""
    import importlib.util

    spec = importlib.util.find_spec("pydantic")
    if spec is None or not spec.submodule_search_locations:
        return
    user = os.path.join(spec.submodule_search_locations[0], "plugin", "_schema_validator.py")
    try:
        with open(user, encoding="utf-8") as source:
            if not loader_stub_fits(source.read()):
                return
    except OSError:
        return
    loader = types.ModuleType("pydantic.plugin._loader")
    loader.__dict__["get_plugins"] = tuple  # which answers ()
    sys.modules.setdefault(loader.__name__, loader)


def loader_stub_fits(source: str) -> bool:
    """Whether the module `source` uses pydantic's plugin loader as the stub answers it:
    by importing `get_plugins` from it, and nothing else."""
    uses = [line.strip() for line in source.splitlines() if "_loader" in line]
    return bool(uses) and all(line == "from ._loader import get_plugins" for line in uses)


class _NoLostInterrupt:
    """Ctrl-C is never lost. Python raises KeyboardInterrupt wherever the signal lands,
    and when that is a callback (of the import machinery, which a command's lazy imports
    run too, or of the garbage collector) the exception is printed as "Exception ignored"
    and dropped: the command would go on as if no key had been pressed, or wait for ever
    on what it was reading. A dropped KeyboardInterrupt instead prints nothing and sends
    SIGINT again, to land where it is raised for good."""

    def __init__(self) -> None:
        self._hook = sys.unraisablehook

    def __enter__(self) -> None:
        def hook(unraisable: sys.UnraisableHookArgs) -> None:
            if issubclass(unraisable.exc_type, KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
            else:
                self._hook(unraisable)

        sys.unraisablehook = hook

    def __exit__(self, *_exc: object) -> None:
        sys.unraisablehook = self._hook


def quiet_run(argv: Sequence[str]) -> int | None:
    """Answer `apply`/`audit` from the quiet record: the exit code after printing the
    run's summary (in sync), or an `audit`'s output when it finds just what the last one
    found; None when the full run must decide."""
    if not argv or argv[0] not in ("apply", "audit"):
        return None
    import socket
    from datetime import UTC, datetime

    from reconciler import quiet

    started, clock = datetime.now(UTC), time.monotonic()

    options = quiet.command_options(argv[1:], _VALUED, _FLAGS)
    if options is None or (argv[0] == "audit" and "--max-severity" in options):
        return None  # the full command line interface says what is wrong
    from reconciler.statedir import AGE_IDENTITY, StateDir

    node = options.get("--node") or socket.getfqdn()
    root = os.path.abspath(options.get("--root", "/"))
    state = StateDir.of(options["--state-dir"]) if "--state-dir" in options \
        else StateDir.under(root)
    repo = options.get("--repo", ".")
    identity = options.get("--identity", AGE_IDENTITY)
    # A node whose history has no first record yet takes the full run, which makes it.
    if not os.path.exists(quiet.quiet_path(state)) or not os.path.exists(state.history / "HEAD"):
        return None
    mode = "change" if argv[0] == "apply" else "audit"
    repeated = None
    try:
        with quiet.node_lock(state):
            found = quiet.compare(state, root, lambda facts: quiet.key_of(
                quiet.worktree_fingerprint(repo), node, root, state, identity,
                _facts(root) if facts else None))
            if found is None:
                return None
            if found.paths:
                repeated = _repeat(state, found, mode, started, clock)
                if repeated is None:
                    quiet.hand_over_paths(state, found)
                    return None
            else:
                ceiling = options.get("--max-severity", found.settled.ceiling) \
                    if mode == "change" else found.settled.ceiling
                quiet.record_quiet(state, found.settled, mode=mode, mode_from=None,
                                   ceiling=ceiling, started=started,
                                   duration_s=time.monotonic() - clock)
    except OSError:
        # The lock is held (the full run waits for it), a path is unreadable, or the run
        # could not be recorded (the full run says why).
        return None
    if repeated is not None:
        sys.stdout.write(repeated[0])
        return repeated[1]
    shown = f", ceiling {ceiling}" if ceiling else ""
    print(f"{node} — {'apply' if mode == 'change' else 'audit'} at working tree{shown}, "
          f"root {root}")
    print(f"in-sync (exit 0): {found.settled.count} in sync in "
          f"{time.monotonic() - clock:.2f}s")
    return 0


def _repeat(state: StateDir, found: Drifted, mode: str, started: datetime,
            clock: float) -> tuple[str, int] | None:
    """An audit printing to a pipe that finds the drift the last audit found: its output
    and exit code, the run recorded (record/repeat.py); None when it must be planned."""
    from reconciler.terminal import could_be_terminal

    if mode != "audit" or could_be_terminal(sys.stdout):
        return None
    from reconciler.record import repeat

    return repeat.again(state, found, started, time.monotonic() - clock)


def _facts(root: str) -> str:
    """The digest of this node's facts, for a config whose templates read them."""
    from reconciler import quiet
    from reconciler.facts.gather import gather_at

    return quiet.facts_digest(gather_at(root).model_dump_json())
