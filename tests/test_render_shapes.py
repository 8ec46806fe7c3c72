"""Templates that differ only in their string literals are compiled once (render/shapes.py)
and still each render, and fail, as their own text says."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_support import desired, make_repo

from reconciler.errors import ConfigError

COUNT = 4


def files(count: int = COUNT) -> str:
    return "\n".join(f'<file path="/etc/t{i}" template="web/t{i}.j2"/>' for i in range(count))


def rendered(tmp_path: Path, templates: dict[str, str | bytes]) -> dict[str, bytes | None]:
    repo = make_repo(tmp_path, files(), templates=templates)
    return {item.path: item.content for item in desired(repo).files()}


def test_templates_of_one_shape_each_render_their_own_strings(tmp_path: Path) -> None:
    templates: dict[str, str | bytes] = {
        f"web/t{i}.j2": f'{{% set site = "site-{i}" %}}{{% include "web/body{i % 2}.j2" %}}'
                        f'{{{{ nothing|default("none-{i}") }}}}\n'
        for i in range(COUNT)}
    templates |= {"web/body0.j2": "{{ greeting }} from {{ site }} (even) ",
                  "web/body1.j2": "{{ greeting }} from {{ site }} (odd) "}

    assert rendered(tmp_path, templates) == {
        f"/etc/t{i}": f"hello from site-{i} ({('even', 'odd')[i % 2]}) none-{i}\n".encode()
        for i in range(COUNT)}


def test_literals_jinja_would_fold_render_from_each_templates_own_text(tmp_path: Path) -> None:
    templates: dict[str, str | bytes] = {
        f"web/t{i}.j2": f'{{% set low = "ABC-{i}"|lower %}}{{% set bare = "{" " * i}p"|trim %}}'
                        f'{{% set some = "{"x" * i}" or greeting %}}'
                        f'{{{{ low }}}}|{{{{ bare }}}}|{{{{ some }}}}\n'
        for i in range(COUNT)}

    assert rendered(tmp_path, templates) == {
        f"/etc/t{i}": f"abc-{i}|p|{'x' * i or 'hello'}\n".encode() for i in range(COUNT)}


def test_an_error_in_a_template_of_a_shared_shape_names_that_template(tmp_path: Path) -> None:
    templates: dict[str, str | bytes] = {
        f"web/t{i}.j2": f'first line\n{{% include "web/part{i}.j2" %}}\n' for i in range(COUNT)}
    templates |= {f"web/part{i}.j2": f"part {i}\n" for i in range(COUNT - 1)}
    repo = make_repo(tmp_path, files(), templates=templates)

    with pytest.raises(ConfigError) as raised:
        desired(repo)

    [problem] = raised.value.problems
    assert (problem.path, problem.line) == (f"templates/web/t{COUNT - 1}.j2", 2)
    assert f"web/part{COUNT - 1}.j2" in problem.message


def test_quoted_text_outside_tags_is_never_taken_for_a_literal(tmp_path: Path) -> None:
    templates: dict[str, str | bytes] = {"web/t0.j2": 'said "bye" {# "x" #}\n',
                                         "web/t1.j2": 'said "{{ greeting }}" {# "y" #}\n',
                                         "web/t2.j2": '{% raw %}"{{ greeting }}"{% endraw %}\n',
                                         "web/t3.j2": '{% raw %}"bye"{% endraw %}\n'}

    assert rendered(tmp_path, templates) == {
        "/etc/t0": b'said "bye" \n', "/etc/t1": b'said "hello" \n',
        "/etc/t2": b'"{{ greeting }}"\n', "/etc/t3": b'"bye"\n'}
