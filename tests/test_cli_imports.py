"""The command line loads only what the command it runs needs: naming a command loads
its own module of commands alone, naming the commands (to resolve one, or to print the
help) loads none of the engine's heavy libraries, and an
audit of drift alone, which plans from the desired state the settled run kept, loads
neither the template engine nor the XML parser (test_quiet_cycle.py: the quiet process
loads none of them). The reports server's hook, run for every push, loads no pydantic to
refuse a push, and the model of a published report alone to read one: none of the run
report's, the facts' or the compiler's; and a run from agent.toml (the agent's,
`reconciler run`'s) loads that model only to publish. Reading agent.toml (status, check,
the Nagios plugin run every minute) builds none of the node configuration's models.
The program ends with what it imported and built frozen, out of the reach of the
interpreter's last collections; a program that goes on (a CliRunner) keeps its collector."""

from __future__ import annotations

import gc
import importlib
from pathlib import Path

import click
from click.testing import CliRunner
from clirun import fresh_python
from quiet_support import applied_node
from test_quiet_cycle import args, make_repo

from reconciler import cli
from reconciler.cli import COMMANDS
from reconciler.entry import loader_stub_fits

HEAVY = "{'pydantic', 'jinja2', 'lxml', 'rich'}"


def loaded_after(code: str) -> tuple[str, str]:
    """What `code` printed in a fresh interpreter, and the heavy libraries it then holds."""
    probe = (f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n"
             f"print(sorted({HEAVY} & {{m.split('.')[0] for m in sys.modules}}))")
    done = fresh_python(probe)
    printed, _, loaded = done.stdout.rstrip("\n").rpartition("\n")
    return printed, loaded


def test_resolving_audit_and_apply_loads_no_heavy_library() -> None:
    _, loaded = loaded_after(
        "import click; from reconciler.cli import main; context = click.Context(main); "
        "assert main.get_command(context, 'audit') and main.get_command(context, 'apply')")

    assert loaded == "[]"


def test_a_command_loads_its_own_module_of_commands_alone() -> None:
    probe = ("import sys, click; from reconciler.cli import main; "
             "main.get_command(click.Context(main), 'audit'); "
             "print(sorted(m for m in sys.modules if m.startswith('reconciler.cli.') "
             "and hasattr(sys.modules[m], 'register')))")
    done = fresh_python(probe)

    assert done.stdout.strip() == "['reconciler.cli.node']"


def test_every_command_is_found_in_the_module_that_defines_it() -> None:
    found = {}
    for module in sorted(set(COMMANDS.values())):
        group = click.Group()
        importlib.import_module(f"reconciler.cli.{module}").register(group)
        found.update(dict.fromkeys(group.commands, module))

    assert found == COMMANDS
    assert {path.stem for path in Path(cli.__file__).parent.glob("*.py")
            if "def register(" in path.read_text()} == set(COMMANDS.values())


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
    assert loaded == "['pydantic']"  # the run report's model; its text on a pipe needs no rich


def test_the_reports_hook_refuses_a_push_without_loading_pydantic(tmp_path: Path) -> None:
    probe = ("import sys; from reconciler.entry import main; "
             "sys.argv[1:] = ['fleet', 'check-push']\ntry:\n    main()\nexcept SystemExit:\n"
             "    print(*(m for m in sys.modules if m.startswith(('reconciler.', 'pydantic'))))")
    done = fresh_python(probe, stdin=f"{'0' * 40} {'1' * 40} refs/heads/main\n", cwd=tmp_path)

    assert "only refs/reports/<node> may be pushed" in done.stderr
    assert "reconciler.fleet.receive" in done.stdout.split()
    assert "pydantic" not in done.stdout.split()


def test_a_published_report_builds_no_run_report_facts_or_compiler() -> None:
    probe = ("import sys, reconciler.fleet.receive, reconciler.fleet.model; "
             "print(*(m for m in sys.modules if m.startswith('reconciler.')))")
    done = fresh_python(probe)

    assert not set(done.stdout.split()) & {
        "reconciler.record.report", "reconciler.facts.model", "reconciler.source.snapshot",
        "reconciler.compile.compiler"}


def test_a_run_from_agent_settings_loads_no_published_report_model() -> None:
    probe = ("import sys, reconciler.cli.agent, reconciler.agent.daemon, reconciler.agent.runs; "
             "print(*(m for m in sys.modules if m.startswith('reconciler.')))")
    done = fresh_python(probe)

    loaded = set(done.stdout.split())
    assert {"reconciler.fleet.publish", "reconciler.rollout.gate"} <= loaded
    assert not loaded & {"reconciler.fleet.model", "reconciler.fleet.build",
                         "reconciler.fleet.read", "reconciler.rollout.progress"}


def test_the_nagios_check_builds_no_node_configuration_model(tmp_path: Path) -> None:
    probe = ("import sys; from reconciler.entry import main; "
             f"sys.argv[1:] = ['check', '--config', {str(tmp_path / 'agent.toml')!r}]"
             "\ntry:\n    main()\nexcept SystemExit:\n"
             "    print(*(m for m in sys.modules if m.startswith('reconciler.')))")
    done = fresh_python(probe)

    assert "UNKNOWN" in done.stdout
    assert "reconciler.agent.settings" in done.stdout.split()
    assert "reconciler.compile.nodeconfig" not in done.stdout.split()


def test_the_program_ends_with_what_it_built_frozen() -> None:
    probe = ("import atexit, gc; from reconciler.cli import main; "
             "atexit.register(lambda: print('frozen:', gc.get_freeze_count() > 0)); "
             "main(['--help'])")
    done = fresh_python(probe)

    assert done.stdout.splitlines()[-1] == "frozen: True"


def test_a_command_run_in_process_freezes_nothing() -> None:
    before = gc.get_freeze_count()

    assert CliRunner().invoke(cli.main, ["--help"]).exit_code == 0
    assert gc.get_freeze_count() == before


def test_no_pydantic_plugin_an_installed_package_declares_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "intruder.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('loaded').write_text('yes')\n"
        "class Plugin:\n    pass\nplugin = Plugin()\n")
    metadata = tmp_path / "intruder-1.0.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: intruder\nVersion: 1.0\n")
    (metadata / "entry_points.txt").write_text("[pydantic]\nintruder = intruder:plugin\n")
    repo = make_repo(tmp_path / "repo")
    root = applied_node(tmp_path, repo)
    with open(root / "etc/app/a.conf", "a") as handle:
        handle.write("# hand edit\n")
    path = f"sys.path.insert(0, {str(tmp_path)!r}); "

    printed, loaded = loaded_after(path + "from reconciler.entry import main; "
                                   f"sys.argv[1:] = {args(repo, root, 'audit')!r}; main()")

    assert "drift (exit 2)" in printed and "pydantic" in loaded  # models were built
    assert not (tmp_path / "loaded").exists()
    printed, _ = loaded_after(path + "from importlib.metadata import entry_points; "
                              "print([e.name for e in entry_points(group='pydantic')])")
    assert printed == "['intruder']"  # what the run would have loaded


def test_a_run_reads_no_package_metadata_in_search_of_pydantic_plugins(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    root = applied_node(tmp_path, repo)
    with open(root / "etc/app/a.conf", "a") as handle:
        handle.write("# hand edit\n")

    done = fresh_python("import sys\nfrom reconciler.entry import main\n"
                        f"sys.argv[1:] = {args(repo, root, 'apply')!r}\ntry:\n    main()\n"
                        "except SystemExit:\n    pass\n"
                        "print('pydantic' in sys.modules, 'importlib.metadata' in sys.modules)")

    assert "changed (exit 2)" in done.stdout, done.stderr
    assert done.stdout.splitlines()[-1] == "True False"


def test_the_plugin_loader_stub_is_used_only_where_pydantic_asks_it_for_get_plugins_alone(
) -> None:
    import pydantic.plugin._schema_validator as user

    assert loader_stub_fits(Path(user.__file__).read_text()), "this pydantic: stubbed"
    assert not loader_stub_fits("from ._loader import get_plugins, get_plugin_names\n")
    assert not loader_stub_fits("from ._loader import get_plugins\nx = _loader.cache\n")
    assert not loader_stub_fits("from . import plugins\n"), "no loader imported: no stub"
