"""The command line loads only what the command it runs needs: naming the commands (to
resolve one, or to print the help) loads none of the engine's heavy libraries, and an
audit of drift alone, which plans from the desired state the settled run kept, loads
neither the template engine nor the XML parser (test_quiet_cycle.py: the quiet process
loads none of them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from quiet_support import applied_node
from test_quiet_cycle import args, make_repo

HEAVY = "{'pydantic', 'jinja2', 'lxml', 'rich'}"


def loaded_after(code: str) -> tuple[str, str]:
    """What `code` printed in a fresh interpreter, and the heavy libraries it then holds."""
    probe = (f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n"
             f"print(sorted({HEAVY} & {{m.split('.')[0] for m in sys.modules}}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    printed, _, loaded = done.stdout.rstrip("\n").rpartition("\n")
    return printed, loaded


def test_resolving_audit_and_apply_loads_no_heavy_library() -> None:
    _, loaded = loaded_after(
        "import click; from reconciler.cli import main; context = click.Context(main); "
        "assert main.get_command(context, 'audit') and main.get_command(context, 'apply')")

    assert loaded == "[]"


def test_the_help_loads_no_heavy_library() -> None:
    _, loaded = loaded_after("from reconciler.cli import main; main(['--help'])")

    assert loaded == "[]"


def test_an_audit_of_drift_alone_loads_no_template_engine_or_parser(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    root = applied_node(tmp_path, repo)
    with open(root / "etc/app/a.conf", "a") as handle:
        handle.write("# hand edit\n")

    printed, loaded = loaded_after("from reconciler.entry import main; "
                                   f"sys.argv[1:] = {args(repo, root, 'audit')!r}; main()")

    assert "drift (exit 2): 3 in sync, 1 drift" in printed
    assert loaded == "['pydantic', 'rich']"  # the run report's model, the report's text
