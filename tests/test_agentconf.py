"""agent.toml: defaults, validation errors naming file, key and line, and CLI overrides."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from reconciler.agent.settings import AgentConfig, load, merge_overrides
from reconciler.compile.nodeconfig import Severity
from reconciler.errors import ConfigError, UsageError

FULL = """\
remote = "ssh://git@git.example.org/fleet.git"
mirrors = ["https://mirror.example.org/fleet.git", "/srv/fleet.git"]
branch = "production"
node = "proxy-03.tickets.chi1.sa"
mode = "audit"
max-severity = "restart"
state-dir = "/srv/reconciler"
root = "/mnt/node"
require-signed = "range"
allowed-signers = "/etc/reconciler/allowed_signers"
gpg-home = "/etc/reconciler/gnupg"
interval = 600
splay = 30
fetch-timeout = 20
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_minimal_config_takes_the_defaults(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, 'remote = "https://git.example.org/fleet.git"\n'))
    assert cfg.branch == "main" and cfg.commit is None
    assert cfg.node == socket.getfqdn()
    assert cfg.mode is None, "the fleet's policy decides"
    assert cfg.max_severity is None, "None means: take the ceiling from the fleet policy"
    assert cfg.state_dir == Path("/var/lib/reconciler")
    assert cfg.root == Path("/")
    assert cfg.require_signed == "none"
    assert (cfg.allowed_signers, cfg.gpg_home, cfg.interval, cfg.splay) == (None,) * 4
    assert cfg.fetch_timeout == 60
    assert cfg.mirrors == []


def test_every_key_is_read_with_its_hyphenated_name(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, FULL))
    assert cfg.mirrors == ["https://mirror.example.org/fleet.git", "/srv/fleet.git"]
    assert cfg.branch == "production"
    assert cfg.node == "proxy-03.tickets.chi1.sa"
    assert cfg.mode == "audit"
    assert cfg.max_severity is Severity.RESTART
    assert cfg.state_dir == Path("/srv/reconciler")
    assert cfg.root == Path("/mnt/node")
    assert cfg.require_signed == "range"
    assert cfg.allowed_signers == Path("/etc/reconciler/allowed_signers")
    assert cfg.gpg_home == Path("/etc/reconciler/gnupg")
    assert (cfg.interval, cfg.splay, cfg.fetch_timeout) == (600, 30, 20)


def test_unknown_key_names_the_file_the_key_and_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'remote = "/srv/fleet.git"\n\nmax_severity = "reload"\n')
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == f"{path}:3: max_severity: unknown key; did you mean " \
        "'max-severity'?"


def test_bad_value_names_the_key_and_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'remote = "/srv/fleet.git"\nmax-severity = "loud"\n')
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: max-severity: unknown severity 'loud'")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, 'remote = "/srv/fleet.git"\nmode = "yolo"\ninterval = -5\n')
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert [(p.line, p.message.split(":")[0]) for p in caught.value.problems] == [
        (2, "mode"),
        (3, "interval"),
    ]


def test_branch_and_commit_together_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'remote = "/srv/fleet.git"\nbranch = "main"\ncommit = "abc1234"\n')
    with pytest.raises(ConfigError, match="either branch or commit"):
        load(path)


def test_commit_pin_replaces_the_default_branch(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, 'remote = "/srv/fleet.git"\ncommit = "abc1234"\n'))
    assert (cfg.branch, cfg.commit) == (None, "abc1234")


def test_commit_pin_must_be_hexadecimal(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="commit: commit pin must be a hexadecimal"):
        load(write(tmp_path, 'remote = "/srv/fleet.git"\ncommit = "HEAD~1"\n'))


def test_missing_remote_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, 'branch = "main"\n')
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: remote: required key is missing"


def test_invalid_toml_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'remote = "/srv/fleet.git"\nmode = \n')
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.problems[0].line == 2
    assert str(caught.value).startswith(f"{path}:2: invalid TOML")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{tmp_path / 'nope.toml'}: cannot read agent config"):
        load(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('state-dir = "var/lib/reconciler"', "must be an absolute path"),
        ('node = "not a node"', "bad node name"),
        ('mirrors = ["ext::sh -c evil"]', "transport helper URLs are not allowed"),
        ('mirrors = ["ftp://example.org/fleet.git"]', "unsupported URL scheme 'ftp'"),
        ('require-signed = "all"', "require-signed"),
        ("fetch-timeout = 0", "fetch-timeout"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, line: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load(write(tmp_path, f'remote = "/srv/fleet.git"\n{line}\n'))


def test_cli_flags_override_only_when_given(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, FULL))
    merged = merge_overrides(cfg, mode="change", max_severity="reboot", interval=None, splay=None)
    assert merged.mode == "change"
    assert merged.max_severity is Severity.REBOOT
    assert merged.interval == 600
    assert merged.node == cfg.node
    assert cfg.mode == "audit", "the loaded config is not changed"


def test_cli_commit_flag_replaces_the_file_branch(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, FULL))
    merged = merge_overrides(cfg, commit="0123abcd")
    assert (merged.branch, merged.commit) == (None, "0123abcd")
    back = merge_overrides(merged, branch="main")
    assert (back.branch, back.commit) == ("main", None)


def test_cli_relative_paths_are_taken_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = AgentConfig.model_validate({"remote": "/srv/fleet.git"})
    assert merge_overrides(cfg, **{"state-dir": "state"}).state_dir == tmp_path / "state"


def test_bad_cli_value_is_a_usage_error_naming_the_flag(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, FULL))
    with pytest.raises(UsageError, match="--max-severity: unknown severity 'huge'"):
        merge_overrides(cfg, max_severity="huge")
    with pytest.raises(UsageError, match="unknown agent setting --colour"):
        merge_overrides(cfg, colour="red")
