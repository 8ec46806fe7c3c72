"""Commands for merge requests: `plan` across the fleet, and `hooks install`."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.cli.common import handles_errors
from reconciler.cli.facts import published, published_option
from reconciler.errors import UsageError
from reconciler.terminal import could_be_terminal

if TYPE_CHECKING:
    from reconciler.facts.model import Facts
    from reconciler.review.checks import ChecksReport
    from reconciler.review.model import PlanReport


def register(group: click.Group) -> None:
    group.add_command(plan)
    group.add_command(hooks)


def _plan_with_progress(repo: str, base: str, head: str, jobs: int | None,
                        facts: dict[str, Facts] | None,
                        only: tuple[str, ...] | None, full: bool) -> PlanReport:
    """Run the plan, with a progress bar on stderr when it is a terminal."""
    from reconciler.review.revisions import Revisions

    # Its git processes run while the modules that plan are imported.
    revisions = Revisions(repo, base, head)
    from reconciler.review.fleetplan import plan_fleet

    run = functools.partial(plan_fleet, repo, base, head, jobs, facts=facts, only=only,
                            full=full, revisions=revisions)
    if not could_be_terminal(sys.stderr):  # the bar's imports are spared
        return run()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        return run()
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("rendering nodes", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return run(progress=advance)


@click.command()
@click.option("--base", required=True, metavar="REV", help="The revision the change starts from.")
@click.option("--head", default="HEAD", show_default=True, metavar="REV",
              help="The revision under review.")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False),
              help="The config repo.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True, help="What to print on stdout.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: all cores).")
@click.option("--max-bytes", type=click.IntRange(min=2000), default=60000, show_default=True,
              help="Size cap of the markdown report (a merge-request comment).")
@click.option("--markdown", "markdown_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the markdown report to this file.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the JSON report to this file.")
@click.option("--node", "only", multiple=True, metavar="NAME",
              help="Plan only this node (repeatable) and show its exact diff.")
@click.option("--check", "run_checks", is_flag=True,
              help="Also run the <check>s of the nodes that change, in a sandbox of this "
                   "machine, once per distinct configuration; a failing check exits 1.")
@click.option("--full", is_flag=True,
              help="Compile every node at both revisions, even where the base's "
                   "dependency records prove a node unchanged (files whose inputs are the "
                   "same at both are rendered once).")
@published_option
@handles_errors
def plan(base: str, head: str, repo: str, fmt: str, jobs: int | None, max_bytes: int,
         markdown_out: str | None, json_out: str | None, only: tuple[str, ...],
         run_checks: bool, full: bool, facts_dir: str | None) -> None:
    """Show what changing BASE into HEAD does to every node of the fleet.

    Nodes are compiled and rendered at both revisions — only those the change touches
    when the base's dependency records (kept by earlier plans) prove the rest unchanged;
    nodes making the same change are shown once, each node's own parts marked
    (⟨node.name⟩).
    Exit status: 0 no node changes, 2 something changes, 1 the head is invalid (its
    errors printed as `validate` prints them) or, with --check, a check failed.
    """
    facts = published(facts_dir)
    report = _plan_with_progress(repo, base, head, jobs, facts, only or None, full)
    checks = _checks(repo, head, report, facts) if run_checks and report.valid else None
    if markdown_out:
        _write_report(markdown_out, _markdown(report, max_bytes) + _checks_md(checks))
    if json_out:
        _write_report(json_out, _json(report, checks) + "\n")
    if fmt == "json":
        click.echo(_json(report, checks))
    elif fmt == "markdown":
        click.echo(_markdown(report, max_bytes) + _checks_md(checks), nl=False)
    elif sys.stdout.isatty():
        from rich.console import Console

        from reconciler.review.text import text_lines

        console = Console(highlight=False, soft_wrap=True, emoji=False, markup=False)
        for line in text_lines(report):
            console.print(line)
        if checks is not None:
            console.print(_checks_text(checks), end="")
    else:
        from reconciler.review.text import format_text

        click.echo(format_text(report) + (_checks_text(checks) if checks else ""), nl=False)
    if checks is not None and checks.failed:
        for failed in checks.failed:
            message = (failed.detail or "").splitlines()
            click.echo(f"check failed: `{failed.run}` of {failed.action} on "
                       f"{', '.join(failed.patterns)}: {failed.files[0] if failed.files else ''}"
                       f": {message[0] if message else ''}", err=True)
        sys.exit(1)
    if not report.valid:
        from reconciler.review.validate import finding_line  # its worker pool is not needed here

        for finding in report.head_problems:
            click.echo(finding_line(finding.problem, finding.nodes), err=True)
        click.echo(f"invalid: {len(report.head_problems)} distinct problem(s)", err=True)
    sys.exit(report.exit_code)


def _checks(repo: str, head: str, report: PlanReport, facts: dict[str, Facts] | None) -> \
        ChecksReport:
    """The checks of every node the plan changes or adds, at the head."""
    from reconciler.review.checks import check_fleet

    changed = [name for group in report.groups for name in group.nodes]
    return check_fleet(repo, head, [*changed, *report.added_nodes], facts)


def _checks_text(checks: ChecksReport) -> str:
    from reconciler.review.checks import text

    return "\n" + text(checks)


def _checks_md(checks: ChecksReport | None) -> str:
    if checks is None:
        return ""
    from reconciler.review.checks import text

    return f"\n### Checks\n\n```\n{text(checks)}```\n"


def _markdown(report: PlanReport, max_bytes: int) -> str:
    from reconciler.review.markdown import format_markdown  # not imported for other formats

    return format_markdown(report, max_bytes)


def _json(report: PlanReport, checks: ChecksReport | None) -> str:
    """The plan's JSON document, with the checks under `checks` when they ran."""
    if checks is None:
        return report.model_dump_json(indent=2)
    import json

    document = report.model_dump(mode="json")
    document["checks"] = checks.model_dump(mode="json")
    return json.dumps(document, indent=2, ensure_ascii=False)


def _write_report(path: str, text: str) -> None:
    """Write a report file the caller asked for; a path that cannot be written is a
    usage error, not a traceback."""
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise UsageError.because(f"cannot write {path}: {exc.strerror or exc}") from None


@click.group()
def hooks() -> None:
    """Git hooks of the config repo: install them, or locate the scripts."""


@hooks.command("install")
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False),
              help="A clone of the config repo: installs pre-commit.")
@click.option("--server", default=None, type=click.Path(file_okay=False), metavar="PATH",
              help="A bare repository on the git server: installs pre-receive instead.")
@click.option("--force", is_flag=True, help="Replace hooks that reconciler did not install.")
@click.option("--reports", is_flag=True,
              help="--server PATH receives the fleet's reports: install its pre-receive.")
@click.option("--config-repo", default=None, metavar="PATH",
              help="With --reports: the config repo on this server whose main says which "
                   "nodes may report (default: PATH itself).")
@handles_errors
def hooks_install(repo: str, server: str | None, force: bool, reports: bool,
                  config_repo: str | None) -> None:
    """Install pre-commit into a clone, or pre-receive into a bare repo (--server)."""
    from reconciler.review.hooks import install_hooks

    if (reports or config_repo) and server is None:
        raise UsageError.because("--reports and --config-repo need --server PATH")
    for path in install_hooks(server if server is not None else repo, server is not None, force,
                              reports):
        click.echo(f"installed {path}")
    if server is not None and config_repo is not None:
        from reconciler.fleet.membership import remember_config_repo

        remember_config_repo(Path(server), Path(config_repo))


@hooks.command("path")
@click.argument("name", type=click.Choice(["pre-commit", "pre-receive", "pre-receive-reports",
                                            "mr-check"]))
@handles_errors
def hooks_path(name: str) -> None:
    """Print where the packaged script NAME is (e.g. to run mr-check in CI)."""
    from reconciler.review.hooks import hook_source

    click.echo(str(hook_source(name)))
