"""Helpers for the compiler tests (test_compile*.py): a config repo of BASIC plus some
files, compiled into its fleet, one node's config, or the problems it has."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from configrepo import BASIC, Workspace

from reconciler.compile.compiler import compile_node, load_fleet
from reconciler.compile.inventory import Fleet
from reconciler.compile.nodeconfig import NodeConfig
from reconciler.errors import ConfigError
from reconciler.source.snapshot import open_snapshot

Files = Mapping[str, str | bytes | None]


def fleet_of(ws: Workspace, files: Files) -> Fleet:
    repo = ws.make_repo({**BASIC, **files}, commit=False)
    return load_fleet(open_snapshot(str(repo), None))


def node_of(ws: Workspace, files: Files, name: str = "web-01.tickets.chi1.sa") -> NodeConfig:
    return compile_node(fleet_of(ws, files), name)


def problems_of(ws: Workspace, files: Files) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        fleet_of(ws, files)
    return [str(p) for p in caught.value.problems]
