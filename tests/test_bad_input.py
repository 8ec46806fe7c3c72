"""Hostile or sloppy input through the installed `reconciler` script: each one is a clear
message (naming file and line when one is knowable), a non-zero exit, no traceback, and
nothing written on the node."""

from __future__ import annotations

import hashlib
import subprocess
import zlib
from pathlib import Path

import pytest
from configrepo import BASIC, CliResult, Workspace, class_xml, fleet_xml

NODE = "web-01.tickets.chi1.sa"


def refused(result: CliResult) -> list[str]:
    """Exit 1 without a traceback; returns the stderr lines but the validate summary."""
    assert result.code == 1, result
    assert "Traceback" not in result.err, result.err
    return [line for line in result.err.splitlines() if not line.startswith("invalid: ")]


def validate_with(ws: Workspace, files: dict[str, str | bytes | None]) -> list[str]:
    """The errors of validating BASIC with `files` laid over it (None drops a file);
    warnings, such as a variable a broken template no longer reads, are left out."""
    merged = {rel: text for rel, text in {**BASIC, **files}.items() if text is not None}
    repo = ws.make_repo(merged)
    return [line for line in refused(ws.cli("validate", "--repo", repo))
            if ": warning: " not in line]


def with_range(attributes: str) -> dict[str, str | bytes | None]:
    return {"fleet.xml": fleet_xml(f'  <nodes class="web" product="tickets" cluster="chi1" '
                                   f'{attributes}/>\n')}


def agent_toml(ws: Workspace, extra: str | bytes) -> Path:
    head = (f'remote = "file://{ws.tmp}/nowhere.git"\nnode = "{NODE}"\n'
            f'root = "{ws.tmp}/node"\nstate-dir = "{ws.tmp}/state"\n').encode()
    path = ws.tmp / "agent.toml"
    path.write_bytes(head + (extra.encode() if isinstance(extra, str) else extra))
    return path


# ---------------------------------------------------------------- templates


def test_template_that_includes_itself_is_a_located_error(ws: Workspace) -> None:
    lines = validate_with(ws, {"templates/base/motd.j2": '{% include "base/motd.j2" %}\n'})
    assert len(lines) == 1
    assert lines[0].startswith("templates/base/motd.j2:1: recursion too deep: a template that "
                               "includes itself")


def test_macro_that_calls_itself_forever_is_a_located_error(ws: Workspace) -> None:
    lines = validate_with(ws, {"templates/base/motd.j2":
                               "hello\n{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}\n"})
    assert len(lines) == 1 and lines[0].startswith("templates/base/motd.j2:2: recursion too deep")


def test_huge_string_repetition_in_a_template_is_refused_by_the_sandbox(ws: Workspace) -> None:
    lines = validate_with(ws, {"templates/base/motd.j2": '{{ "-" * 10**10 }}\n'})
    assert len(lines) == 1
    assert lines[0].startswith("templates/base/motd.j2:1: unsafe template operation refused by "
                               "the sandbox: repetition of 10000000000 items is too large")


def test_huge_power_in_a_template_is_refused_by_the_sandbox(ws: Workspace) -> None:
    lines = validate_with(ws, {"templates/base/motd.j2": "{{ 7 ** 100000000 }}\n"})
    assert len(lines) == 1
    assert lines[0].startswith("templates/base/motd.j2:1: unsafe template operation refused by "
                               "the sandbox: 7 ** 100000000 is too large")


def test_ordinary_repetition_and_powers_still_render(ws: Workspace) -> None:
    repo = ws.make_repo({**BASIC, "templates/base/motd.j2": '{{ "=" * 3 }} {{ 2 ** 10 }}\n'})
    code, out, err = ws.cli("render", "--repo", repo, NODE)
    assert (code, err) == (0, "") and "=== 1024\n" in out


def test_range_beyond_the_sandbox_limit_is_a_located_error(ws: Workspace) -> None:
    lines = validate_with(ws, {"templates/base/motd.j2":
                               "{% for i in range(10**9) %}x{% endfor %}\n"})
    assert len(lines) == 1 and lines[0].startswith("templates/base/motd.j2:1: OverflowError: "
                                                   "Range too big.")


def test_template_that_is_not_utf8_is_refused(ws: Workspace) -> None:
    lines = validate_with(ws, {"templates/base/motd.j2": b"{{ greeting }} \xff\xfe\n"})
    assert len(lines) == 1 and "template templates/base/motd.j2 is not UTF-8 text" in lines[0]


def test_template_that_is_a_directory_says_so(ws: Workspace) -> None:
    lines = validate_with(ws, {"templates/base/motd.j2": None,
                               "templates/base/motd.j2/inside": "x\n"})
    assert len(lines) == 1 and lines[0].startswith(
        "classes/base.xml:2: template templates/base/motd.j2 is a directory, not a file")


# ---------------------------------------------------------------- XML


def test_class_file_that_is_a_directory_says_so(ws: Workspace) -> None:
    lines = validate_with(ws, {"classes/web.xml": None, "classes/web.xml/inside": "x\n"})
    assert lines == ["classes/web.xml: a directory, not a file"]


def test_nul_byte_in_xml_is_one_clean_line(ws: Workspace) -> None:
    lines = validate_with(ws, {"fleet.xml": b'<fleet domain="sa">\0</fleet>\n'})
    assert lines == ["fleet.xml:1: NUL byte in the file: config XML is UTF-8 text"]


DOCTYPE = ('<?xml version="1.0" encoding="{}"?>\n<!DOCTYPE fleet [<!ENTITY x "boom">]>\n'
           '<fleet domain="sa">&x;</fleet>\n')


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "cp500"])
def test_a_doctype_in_another_encoding_is_refused_as_not_utf8(
    ws: Workspace, encoding: str
) -> None:
    lines = validate_with(ws, {"fleet.xml": DOCTYPE.format(encoding).encode(encoding)})
    assert len(lines) == 1 and "config XML is UTF-8" in lines[0], lines


def test_an_xml_declaration_of_another_encoding_is_refused(ws: Workspace) -> None:
    lines = validate_with(ws, {"fleet.xml": DOCTYPE.format("ISO-8859-1").encode("latin-1")})
    assert lines == ["fleet.xml:1: encoding 'ISO-8859-1' is not allowed: config XML is UTF-8"]


def test_the_xml_size_cap_counts_every_included_file_together(ws: Workspace) -> None:
    big = {f"classes/vars/{n}.xml": f'<var name="v{n}">{"a" * 1_000_000}</var>\n'
           for n in range(5)}
    includes = "".join(f'  <xi:include href="vars/{n}.xml"/>\n' for n in range(5))
    web = ('<class name="web" xmlns:xi="http://www.w3.org/2001/XInclude">\n'
           f'{includes}</class>\n')
    lines = validate_with(ws, {**big, "classes/web.xml": web})
    assert lines == ["classes/vars/4.xml:1: with what it includes, the document is larger "
                     "than 4194304 bytes"]


def test_empty_fleet_xml_is_refused(ws: Workspace) -> None:
    assert validate_with(ws, {"fleet.xml": ""}) == ["fleet.xml:1: malformed XML: Document is empty"]


def test_node_range_with_a_huge_count_is_refused_at_once(ws: Workspace) -> None:
    lines = validate_with(ws, with_range('count="99999999999999999999"'))
    assert lines == ["fleet.xml:2: count 99999999999999999999 is too large "
                     "(at most 100000 nodes per range)"]


def test_node_range_with_a_huge_width_is_refused(ws: Workspace) -> None:
    lines = validate_with(ws, with_range('count="2" width="2000000000"'))
    assert lines == ["fleet.xml:2: host names web-<number> of this range would be longer than "
                     "63 characters (check start and width)"]


def test_node_range_with_thousands_of_digits_is_refused(ws: Workspace) -> None:
    lines = validate_with(ws, with_range(f'count="2" start="{"9" * 5000}"'))
    assert lines == ["fleet.xml:2: count, start or width of this range is too large"]


def test_policy_interval_beyond_thirty_days_is_refused(ws: Workspace) -> None:
    lines = validate_with(ws, {"fleet.xml": fleet_xml(
        '  <defaults><policy interval="99999999999999999999"/></defaults>\n'
        '  <nodes class="web" product="tickets" cluster="chi1" count="1"/>\n')})
    assert lines == ["fleet.xml:2: interval 99999999999999999999 is too large (at most 2592000s)"]


def test_validate_command_with_broken_quoting_is_refused_before_any_node(ws: Workspace) -> None:
    lines = validate_with(ws, {"classes/base.xml": class_xml(
        "base", '  <file path="/etc/motd" template="base/motd.j2" validate="check \'%s"/>\n')})
    assert lines == ["classes/base.xml:2: <file>: validate= is not a valid shell command: "
                     "No closing quotation"]


def test_command_run_with_broken_quoting_is_refused(ws: Workspace) -> None:
    lines = validate_with(ws, {"classes/web.xml": class_xml(
        "web", '  <command name="greet" run="echo \'hi"/>\n', "base")})
    assert lines == ["classes/web.xml:2: <command>: run= is not a valid shell command: "
                     "No closing quotation"]


def test_command_timeout_beyond_thirty_days_is_refused(ws: Workspace) -> None:
    lines = validate_with(ws, {"classes/web.xml": class_xml(
        "web", f'  <command name="greet" run="true" timeout="{"9" * 400}"/>\n', "base")})
    assert lines == ["classes/web.xml:2: <command>: timeout is too large (at most 2592000s)"]


# ---------------------------------------------------------------- revisions and outputs


def test_rev_naming_a_blob_says_it_is_not_a_commit(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    blob = ws.git(repo, "rev-parse", "HEAD:fleet.xml")
    lines = refused(ws.cli("validate", "--repo", repo, "--rev", blob))
    assert lines == [f"{repo}: '{blob}' is a blob, not a commit"]


def test_init_where_no_directory_can_be_made_is_a_clean_error(ws: Workspace) -> None:
    blocker = ws.tmp / "a-file"
    blocker.write_text("x\n")
    lines = refused(ws.cli("init", blocker / "fleet"))
    assert lines == [f"error: cannot create {blocker / 'fleet'}: Not a directory"]


def test_render_out_onto_a_directory_is_a_clean_error(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    out = ws.tmp / "out"
    (out / "etc" / "motd").mkdir(parents=True)
    lines = refused(ws.cli("render", "--repo", repo, NODE, "--out", out))
    assert lines == [f"error: cannot write {out}/etc/motd: Is a directory"]


def test_plan_report_into_a_missing_directory_is_a_clean_error(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    target = ws.tmp / "missing" / "plan.md"
    lines = refused(ws.cli("plan", "--repo", repo, "--base", "HEAD", "--markdown", target))
    assert lines == [f"error: cannot write {target}: No such file or directory"]


def test_validate_refuses_zero_jobs(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    code, _, err = ws.cli("validate", "--repo", repo, "-j", "0")
    assert code != 0 and "Traceback" not in err and "0 is not in the range x>=1" in err


# ---------------------------------------------------------------- node runs


def test_apply_with_a_broken_template_writes_no_managed_file(ws: Workspace) -> None:
    repo = ws.make_repo({**BASIC, "templates/base/motd.j2": '{% include "base/motd.j2" %}\n'})
    root = ws.tmp / "node"
    result = ws.cli("apply", "--repo", repo, "--node", NODE, "--root", root)
    refused(result)
    assert "templates/base/motd.j2:1: recursion too deep" in result.out
    assert "refused (exit 1): nothing was changed" in result.out
    assert not (root / "etc").exists()


def test_agent_config_that_is_not_utf8_names_its_line(ws: Workspace) -> None:
    config = agent_toml(ws, b'branch = "m\xffin"\n')
    assert refused(ws.cli("run", "--config", config)) == [
        f"{config}:5: agent config is not UTF-8 text"]


def test_agent_interval_beyond_thirty_days_is_refused(ws: Workspace) -> None:
    config = agent_toml(ws, "interval = 9223372036854775807\n")
    assert refused(ws.cli("run", "--config", config)) == [
        f"{config}:5: interval: Input should be less than or equal to 2592000"]


def test_agent_infinite_fetch_timeout_is_refused(ws: Workspace) -> None:
    config = agent_toml(ws, "fetch-timeout = inf\n")
    lines = refused(ws.cli("run", "--config", config))
    assert len(lines) == 1 and lines[0].startswith(f"{config}:5: fetch-timeout: Input should be")
    assert not (ws.tmp / "node").exists()


# ---------------------------------------------------------------- paths that cannot be applied


def test_newline_in_a_managed_path_is_refused_by_validate(ws: Workspace) -> None:
    lines = validate_with(ws, {"classes/web.xml": class_xml(
        "web", '  <file path="/etc/a&#10;b"><content>x</content></file>\n', inherits="base")})
    assert lines == ["classes/web.xml:2: <file>: path '/etc/a\\nb' contains a control "
                     "character (a newline, a tab...): no record of it could be kept on "
                     "one line"]


def test_tab_in_a_command_cwd_is_refused_by_validate(ws: Workspace) -> None:
    lines = validate_with(ws, {"classes/web.xml": class_xml(
        "web", '  <command name="x" run="true" cwd="/srv/&#9;x"/>\n', inherits="base")})
    assert len(lines) == 1 and lines[0].startswith("classes/web.xml:2: <command>: path "
                                                   "'/srv/\\tx' contains a control character")


def test_the_root_itself_as_a_managed_path_is_refused_by_validate(ws: Workspace) -> None:
    lines = validate_with(ws, {"classes/web.xml": class_xml(
        "web", '  <file path="/"><content>x</content></file>\n'
               '  <symlink path="/" target="/x"/>\n', inherits="base")})
    assert lines == [
        "classes/web.xml:2: <file>: path '/' is the root itself: an action manages something "
        "below it",
        "classes/web.xml:3: <symlink>: path '/' is the root itself: an action manages "
        "something below it"]


def test_a_file_and_a_file_under_it_are_refused_by_validate(ws: Workspace) -> None:
    lines = validate_with(ws, {"classes/web.xml": class_xml(
        "web", '  <file path="/etc/x"><content>x</content></file>\n'
               '  <file path="/etc/x/y"><content>y</content></file>\n', inherits="base")})
    assert lines == [
        "classes/web.xml:3: manages /etc/x/y, below /etc/x, which file:/etc/x (line 2 of "
        "classes/web.xml) keeps as a file: a path cannot be a file and a directory at once "
        "(file:/etc/x/y)"]


def test_a_symlink_with_a_directory_under_it_across_classes_is_refused(ws: Workspace) -> None:
    lines = validate_with(ws, {
        "classes/base.xml": class_xml("base", '  <symlink path="/srv/app" target="/opt"/>\n'),
        "classes/web.xml": class_xml("web", '  <directory path="/srv/app/data"/>\n',
                                     inherits="base")})
    assert len(lines) == 1 and lines[0].startswith(
        "classes/web.xml:2: manages /srv/app/data, below /srv/app, which symlink:/srv/app "
        "(line 2 of classes/base.xml) keeps as a file")


def test_a_file_under_a_line_edited_file_is_refused(ws: Workspace) -> None:
    lines = validate_with(ws, {"classes/web.xml": class_xml(
        "web", '  <line path="/etc/hosts" name="me" line="127.0.1.1 me"/>\n'
               '  <file path="/etc/hosts/extra"><content>x</content></file>\n',
        inherits="base")})
    assert len(lines) == 1 and "below /etc/hosts, which line:/etc/hosts#me" in lines[0]


# ---------------------------------------------------------------- undefined never written


def test_undefined_variable_inside_a_list_fails_instead_of_writing_undefined(
    ws: Workspace,
) -> None:
    lines = validate_with(ws, {"templates/base/motd.j2": "{{ [missing] }}\n"})
    assert lines == ["templates/base/motd.j2:1: undefined variable: 'missing' is undefined "
                     "(node web-01.events.lax2.sa) (and 2 more nodes)"]


@pytest.mark.parametrize("expression", ["missing|pprint", "(1, missing)", "{'a': missing}",
                                        "'%r'|format(missing)"])
def test_undefined_variable_shown_through_repr_fails(ws: Workspace, expression: str) -> None:
    lines = validate_with(ws, {"templates/base/motd.j2": f"{{{{ {expression} }}}}\n"})
    assert lines == ["templates/base/motd.j2:1: undefined variable: 'missing' is undefined "
                     "(node web-01.events.lax2.sa) (and 2 more nodes)"]


def test_apply_of_a_template_with_an_undefined_inside_a_list_writes_nothing(
    ws: Workspace,
) -> None:
    repo = ws.make_repo({**BASIC, "templates/base/motd.j2": "{{ [greeting, missing] }}\n"})
    root = ws.tmp / "node"

    done = ws.cli("apply", "--repo", repo, "--node", NODE, "--root", root)

    assert done.code == 1 and "'missing' is undefined" in done.out + done.err
    assert not (root / "etc/motd").exists()


# ---------------------------------------------------------------- the commit's tree


def _tree(ws: Workspace, repo: Path, entries: list[str]) -> str:
    return subprocess.run(["git", "mktree"], cwd=repo, env=ws.env, check=True, text=True,
                          capture_output=True, input="".join(entries)).stdout.strip()


def _pack(ws: Workspace, repo: Path, objects: list[str]) -> None:
    """Move the loose `objects` of `repo` into a pack of their own."""
    subprocess.run(["git", "pack-objects", "-q", ".git/objects/pack/pack"], cwd=repo,
                   env=ws.env, check=True, capture_output=True, text=True,
                   input="".join(f"{sha}\n" for sha in objects))
    ws.git(repo, "prune-packed")


def test_a_few_objects_that_expand_to_a_million_paths_are_refused_unread(
    ws: Workspace,
) -> None:
    repo = ws.make_repo(BASIC)
    blob = ws.git(repo, "hash-object", "-w", "--stdin")
    leaf = _tree(ws, repo, [f"100644 blob {blob}\tf{n}\n" for n in range(100)])
    middle = _tree(ws, repo, [f"040000 tree {leaf}\td{n}\n" for n in range(100)])
    top = _tree(ws, repo, [f"040000 tree {middle}\tx{n}\n" for n in range(100)])
    commit = ws.git(repo, "commit-tree", top, "-p", "HEAD", "-m", "a million paths")
    # In one pack, as a fetch brings many objects: git lists a packed blob's size from the
    # pack, and opens a loose one for it on each of the million paths (5 CPU-s).
    _pack(ws, repo, [blob, leaf, middle, top, commit])
    lines = refused(ws.cli("validate", "--repo", repo, "--rev", commit))
    assert len(lines) == 1 and "paths" in lines[0] and "refused unread" in lines[0], lines


def _zeros_blob(repo: Path, size: int) -> str:
    """A blob of `size` zero bytes, written into the object store exactly as `git
    hash-object -w` writes it (a zlib-deflated "blob SIZE\\0" and content, named by its
    SHA-1), without the seconds git's collision-detecting SHA-1 takes over 300 MB."""
    header = f"blob {size}\0".encode()
    chunk = bytes(1 << 20)
    digest = hashlib.sha1(header)
    deflate = zlib.compressobj(1)
    parts = [deflate.compress(header)]
    for _ in range(size >> 20):
        digest.update(chunk)
        parts.append(deflate.compress(chunk))
    parts.append(deflate.flush())
    sha = digest.hexdigest()
    path = repo / ".git" / "objects" / sha[:2] / sha[2:]
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"".join(parts))
    return sha


def test_a_300_mb_blob_is_refused_before_it_is_read(ws: Workspace) -> None:
    repo = ws.make_repo(BASIC)
    blob = _zeros_blob(repo, 300 << 20)
    assert ws.git(repo, "cat-file", "-s", blob) == str(300 << 20)
    ws.git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},templates/huge.bin")
    ws.git(repo, "commit", "--quiet", "-m", "a huge blob")
    lines = refused(ws.cli("validate", "--repo", repo, "--rev", "HEAD"))
    assert len(lines) == 1 and "more than 268435456 bytes (at templates/huge.bin)" in lines[0]
