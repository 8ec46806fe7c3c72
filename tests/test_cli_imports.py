"""The command line loads only what the command it runs needs: naming the commands (to
resolve one, or to print the help) loads none of the engine's heavy libraries, so every
command starts as fast as its own work allows (test_quiet_cycle.py does the same for the
quiet process)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = "{'pydantic', 'jinja2', 'lxml', 'rich'}"


def loaded_after(code: str) -> str:
    """The heavy libraries a fresh interpreter holds after running `code`."""
    probe = (f"import sys\n{code}\n"
             f"print(sorted({HEAVY} & {{m.split('.')[0] for m in sys.modules}}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    return done.stdout.splitlines()[-1]


def test_resolving_audit_and_apply_loads_no_heavy_library() -> None:
    loaded = loaded_after(
        "import click\nfrom reconciler.cli import main\n"
        "context = click.Context(main)\n"
        "assert main.get_command(context, 'audit') is not None\n"
        "assert main.get_command(context, 'apply') is not None")

    assert loaded == "[]"


def test_the_help_loads_no_heavy_library() -> None:
    loaded = loaded_after(
        "from reconciler.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass")

    assert loaded == "[]"
