"""The agent's own settings: `/etc/reconciler/agent.toml`, validated, with CLI overrides.

TOML keys use hyphens (`max-severity`); the model's fields use underscores. Unknown
keys are an error so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from reconciler import statedir
from reconciler.agent.urls import check_tip_url, check_url
from reconciler.compile import names
from reconciler.compile.suggest import did_you_mean
from reconciler.errors import ConfigError, Problem, UsageError
from reconciler.severity import Severity

DEFAULT_PATH = statedir.AGENT_CONFIG

_HEX_RE = re.compile(r"^[0-9a-f]{7,64}$")


def _severity(value: object) -> object:
    return Severity.parse(value) if isinstance(value, str) else value


# Longer than this is a typo, and would overflow the agent's sleep.
MAX_SECONDS = 30 * 86400


class AgentConfig(BaseModel):
    """Validated agent settings; `branch` is None exactly when a `commit` pin is set."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_alias=True, validate_by_name=True
    )

    remote: str
    mirrors: list[str] = Field(default_factory=list)
    branch: str | None = None
    commit: str | None = None
    node: str = Field(default_factory=socket.getfqdn)
    # None: the fleet's <policy mode=...> decides; set here it overrides the fleet.
    mode: Literal["audit", "change"] | None = None
    max_severity: Annotated[Severity | None, BeforeValidator(_severity)] = Field(
        None, alias="max-severity"
    )
    state_dir: Path = Field(statedir.DEFAULT, alias="state-dir")
    root: Path = Path("/")
    require_signed: Literal["none", "head", "range"] = Field("none", alias="require-signed")
    allowed_signers: Path | None = Field(None, alias="allowed-signers")
    gpg_home: Path | None = Field(None, alias="gpg-home")
    # Who may sign (SSH principals, OpenPGP user ids, e-mails or fingerprints); empty:
    # anyone the allowed-signers file or the keyring trusts.
    signers: list[str] = Field(default_factory=list)
    interval: int | None = Field(None, gt=0, le=MAX_SECONDS)
    splay: int | None = Field(None, ge=0, le=MAX_SECONDS)
    fetch_timeout: float = Field(60.0, gt=0, le=MAX_SECONDS, alias="fetch-timeout")
    # The static tip file the server's post-receive hook publishes (source/tip.py): when
    # it names the commit the node enforces, a run skips git.
    tip_url: str | None = Field(None, alias="tip-url")
    # What rendering the node's templates may cost (render/budget.py): CPU seconds, MiB.
    render_cpu: int = Field(60, gt=0, le=3600, alias="render-cpu")
    render_memory: int = Field(1024, ge=64, le=1 << 20, alias="render-memory")
    # The node's age identity: decrypts the secrets its templates read (0600, its own).
    identity: Path = Path(statedir.AGE_IDENTITY)
    # Fleet reports (reconciler/fleet): where to push them (default: the config remote
    # and its mirrors), the heartbeat period, and the node's signing key.
    reports: str | None = None
    report_mirrors: list[str] | None = Field(None, alias="report-mirrors")
    report_interval: int = Field(3600, gt=0, le=MAX_SECONDS, alias="report-interval")
    signing_key: Path = Field(statedir.SIGNING_KEY, alias="signing-key")

    @model_validator(mode="before")
    @classmethod
    def _branch_or_commit(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("branch") is not None and data.get("commit") is not None:
            raise ValueError("set either branch or commit (a pin), not both")
        if data.get("commit") is None and data.get("branch") is None:
            return {**data, "branch": "main"}
        return data

    @field_validator("remote", "mirrors", "reports", "report_mirrors")
    @classmethod
    def _url(cls, value: str | list[str] | None) -> str | list[str] | None:
        for url in [value] if isinstance(value, str) else value or []:
            check_url(url)
        return value

    @field_validator("tip_url")
    @classmethod
    def _tip_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_tip_url(value)
        return value

    @field_validator("branch")
    @classmethod
    def _branch_name(cls, value: str | None) -> str | None:
        if value is not None and (
            not value or value.startswith(("-", "/")) or ".." in value or " " in value
        ):
            raise ValueError(f"bad branch name {value!r}")
        return value

    @field_validator("commit")
    @classmethod
    def _commit_sha(cls, value: str | None) -> str | None:
        if value is not None and not _HEX_RE.match(value):
            raise ValueError(f"commit pin must be a hexadecimal commit id, got {value!r}")
        return value

    @field_validator("node")
    @classmethod
    def _node_name(cls, value: str) -> str:
        names.parse(value)  # raises NodeNameError (a ValueError) with the reason
        return value

    @field_validator("state_dir", "root", "allowed_signers", "gpg_home", "identity",
                     "signing_key")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(value)!r}")
        return value


def _field_alias(name: str) -> str:
    field = AgentConfig.model_fields.get(name)
    return field.alias if field is not None and field.alias else name


def _key_line(text: str, key: str) -> int | None:
    """The line of `key = ...` in the TOML text, or None when it is not written there."""
    pattern = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*=""")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def _problems(error: ValidationError, path: str, text: str) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        key = loc[0] if item["type"] == "extra_forbidden" else _field_alias(loc[0]) if loc else ""
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key" + did_you_mean(key, _toml_keys())
        elif item["type"] == "missing":
            message = "required key is missing"
        where = ".".join([key, *loc[1:]]) if key else "agent config"
        problems.append(Problem(f"{where}: {message}", path, _key_line(text, key) if key else None))
    return problems


def _toml_keys() -> list[str]:
    """Every key agent.toml may hold, as the file spells it."""
    return [_field_alias(name) for name in AgentConfig.model_fields]


def load(path: str | Path = DEFAULT_PATH) -> AgentConfig:
    """Read and validate agent.toml; every problem names the file, the key and its line."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError.at(f"cannot read agent config: {err.strerror or err}", name) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError.at("agent config is not UTF-8 text", name,
                             raw.count(b"\n", 0, err.start) + 1) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        match = re.search(r"\(at line (\d+)", str(err))
        raise ConfigError.at(
            f"invalid TOML: {err}", name, int(match.group(1)) if match else None
        ) from None
    try:
        # The file speaks TOML keys only (`max-severity`); field names are for CLI overrides.
        return AgentConfig.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as err:
        raise ConfigError(_problems(err, name, text)) from None


_PATH_FIELDS = ("state_dir", "root", "allowed_signers", "gpg_home", "identity", "signing_key")


def merge_overrides(cfg: AgentConfig, **cli_values: Any) -> AgentConfig:
    """Apply the CLI flags that were given (not None) on top of the file's settings.

    Keys are field names (`max_severity`) or TOML keys (`max-severity`). A `commit`
    flag replaces the file's `branch` and vice versa. Relative paths are taken
    relative to the current directory, as a shell user expects.
    """
    data = cfg.model_dump(exclude_unset=True)
    for key, value in cli_values.items():
        name = key.replace("-", "_")
        if name not in AgentConfig.model_fields:
            raise UsageError.because(f"unknown agent setting --{key.replace('_', '-')}")
        if value is None:
            continue
        if name == "commit":
            data.pop("branch", None)
        elif name == "branch":
            data.pop("commit", None)
        if name in _PATH_FIELDS:
            value = Path(os.path.abspath(value))
        data[name] = value
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as err:
        raise UsageError(
            [
                Problem(
                    f"--{_field_alias(str(e['loc'][0])).replace('_', '-') if e['loc'] else ''}: "
                    + e["msg"].removeprefix("Value error, ")
                )
                for e in err.errors()
            ]
        ) from None
