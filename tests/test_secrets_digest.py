"""A node names a secret file's content by an HMAC under its own key: in its last-applied
records, and when its drift watch compares a live file with them."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

from engine_support import applied_json, converge_root, desired, state_dir
from test_secret_leaks import CANARY, secret_repo

from reconciler.agent.watch import DriftFilter, WatchSet
from reconciler.record import applied
from reconciler.secrets.digest import ContentDigest
from reconciler.statedir import StateDir

TOKEN = "/etc/app/token"


def test_the_record_of_a_secret_file_is_keyed_by_the_node(tmp_path: Path) -> None:
    repo = secret_repo(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root)
    key_file = state_dir(root) / "secret-digest.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = f"token = {CANARY}\n".encode()
    keyed = hmac.new(key_file.read_bytes(), content, hashlib.sha256).hexdigest()
    record = applied_json(root)["paths"][TOKEN]  # type: ignore[index]
    assert record["sha256"] == f"hmac-sha256:{keyed}"
    assert hashlib.sha256(content).hexdigest() not in (state_dir(root) / "applied.json").read_text()


def test_two_nodes_name_the_same_secret_differently(tmp_path: Path) -> None:
    first, second = (ContentDigest.of_state_dir(StateDir(tmp_path / name)) for name in "ab")
    assert first(b"hunter2", True) != second(b"hunter2", True)
    assert first(b"hunter2", False) == second(b"hunter2", False) == \
        hashlib.sha256(b"hunter2").hexdigest()


def test_the_watch_tells_a_hand_edit_of_a_secret_file_from_its_own_write(tmp_path: Path) -> None:
    repo = secret_repo(tmp_path)
    root = tmp_path / "root"
    converge_root(repo, root)
    watchset = WatchSet.from_desired(desired(repo), str(root))
    records = applied.load(StateDir(state_dir(root)))
    digest = ContentDigest.of_state_dir(StateDir(state_dir(root)))
    assert DriftFilter().drifted(watchset, [TOKEN], records, digest) == set()
    (root / TOKEN.lstrip("/")).write_text("token = edited by hand\n")
    assert DriftFilter().drifted(watchset, [TOKEN], records, digest) == {TOKEN}
