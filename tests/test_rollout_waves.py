"""A new config commit moves through the fleet wave by wave: each node reads the
others' published reports, and waits (a normal state, said in its report) until the
earlier waves ran the commit successfully and the soak has passed; a failure halts the
later waves, and a newer commit starts over."""

from __future__ import annotations

import subprocess
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

from clirun import RECONCILER, reconciler
from gitutil_repo import allowed_signers, free_port, ssh_key, ssh_signing, wait_for_port
from rollout_support import CANARY, LAST, SECOND, RolloutFleet

FAILS = '  <command name="smoke" run="exit 3" severity="none"/>\n'


def test_later_waves_wait_for_the_canary_then_for_the_soak(tmp_path: Path) -> None:
    fleet = RolloutFleet(tmp_path)
    first = {name: fleet.run(name).config_commit for name in fleet.nodes}
    second = fleet.commit(2)
    waiting = fleet.run(SECOND)
    assert waiting.config_commit == first[SECOND]
    assert waiting.source is not None
    assert waiting.source.rollout == "waiting: wave c1 waits for canary (0 of 1 done)"
    assert (waiting.result, waiting.exit_code) == ("in-sync", 0)
    assert fleet.run(CANARY).config_commit == second
    soaking = fleet.run(SECOND)
    assert soaking.config_commit == first[SECOND]
    assert soaking.source is not None and soaking.source.rollout is not None
    assert soaking.source.rollout.startswith("waiting: wave c1 waits for the soak: canary done")
    fleet.clock.skip(timedelta(minutes=9))
    assert fleet.run(SECOND).config_commit == first[SECOND]
    fleet.clock.skip(timedelta(minutes=2))
    moved = fleet.run(SECOND)
    assert moved.config_commit == second and moved.result == "changed"
    assert moved.source is not None and moved.source.rollout is None
    last = fleet.run(LAST)  # the rest: waits for c1's soak, which began just now
    assert last.source is not None and last.config_commit == first[LAST]
    assert last.source.rollout is not None and "(rest) waits for the soak" in last.source.rollout
    fleet.clock.skip(timedelta(minutes=11))
    assert fleet.run(LAST).config_commit == second


def test_a_failing_canary_halts_every_later_wave_until_a_fixing_commit(tmp_path: Path) -> None:
    fleet = RolloutFleet(tmp_path)
    first = {name: fleet.run(name).config_commit for name in fleet.nodes}
    bad = fleet.commit(2, FAILS, "smoke test that fails")
    failed = fleet.run(CANARY)
    assert (failed.config_commit, failed.result) == (bad, "failed")
    fleet.clock.skip(timedelta(hours=1))
    for name in (SECOND, LAST):
        held = fleet.run(name)
        assert held.config_commit == first[name]
        assert held.source is not None
        assert held.source.rollout == (f"halted at wave canary: failed on {CANARY} "
                                       f"(commit {bad[:12]})")
    fixed = fleet.commit(3, message="fix the smoke test")
    assert fleet.run(CANARY).config_commit == fixed
    assert fleet.run(SECOND).config_commit == first[SECOND]  # soaking now
    fleet.clock.skip(timedelta(minutes=11))
    assert fleet.run(SECOND).config_commit == fixed
    fleet.clock.skip(timedelta(minutes=11))
    assert fleet.run(LAST).config_commit == fixed


def test_a_node_runs_what_its_wave_allows_and_a_newer_commit_starts_over(
    tmp_path: Path,
) -> None:
    fleet = RolloutFleet(tmp_path)
    first = {name: fleet.run(name).config_commit for name in fleet.nodes}
    second = fleet.commit(2)
    assert fleet.run(CANARY).config_commit == second
    fleet.clock.skip(timedelta(minutes=11))
    third = fleet.commit(3)  # the canary has not run it yet: c1 waits again
    waiting = fleet.run(SECOND)
    assert waiting.config_commit == first[SECOND] and waiting.source is not None
    assert waiting.source.rollout == "waiting: wave c1 waits for canary (0 of 1 done)"
    assert fleet.run(CANARY).config_commit == third
    fleet.clock.skip(timedelta(minutes=11))
    assert fleet.run(SECOND).config_commit == third


def test_an_unsigned_emergency_trailer_is_ignored(tmp_path: Path) -> None:
    fleet = RolloutFleet(tmp_path)
    first = fleet.run(SECOND).config_commit
    fleet.commit(2, message="urgent\n\nRollout: immediate")
    waiting = fleet.run(SECOND)
    assert waiting.config_commit == first and waiting.source is not None
    assert waiting.source.rollout == (
        "waiting: wave c1 waits for canary (0 of 1 done) (Rollout: immediate ignored: the "
        "commit is not signed by an allowed signer)")


def test_rollout_status_and_fleet_status_show_each_wave_and_the_halt(tmp_path: Path) -> None:
    fleet = RolloutFleet(tmp_path)
    for name in fleet.nodes:
        fleet.run(name)
    bad = fleet.commit(2, FAILS, "smoke test that fails")
    fleet.run(CANARY)
    fleet.run(SECOND)
    halted = f"halted at wave canary: failed on {CANARY} (commit {bad[:12]})"
    shown = reconciler(["rollout", "status", "--repo", fleet.origin.work,
                        "--reports", fleet.reports])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        f"rollout of {bad[:12]} smoke test that fails (soak 600s, at most 0 failure(s) per "
        "wave)",
        f"  canary     0 of 1    done  halted: {halted}",
        f"          failed on {CANARY} (commit {bad[:12]})",
        f"  c1         0 of 1    done  halted: {halted}",
        f"  (rest)     0 of 1    done  halted: {halted}",
    ]
    status = reconciler(["fleet", "status", "--reports", fleet.reports])
    assert "rollout (waiting for earlier waves, or halted)" in status.stdout
    assert f"  {SECOND}  {halted}" in status.stdout
    node = reconciler(["fleet", "show", SECOND, "--reports", fleet.reports])
    assert f"ROLLOUT     {halted}" in node.stdout
    port = free_port()
    server = subprocess.Popen([RECONCILER, "fleet", "serve", "--reports", str(fleet.reports),
                               "--listen", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=60)
        for path in ("/", f"/node/{SECOND}"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as page:
                assert halted in page.read().decode(), path
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_signed_commit_asking_for_an_immediate_rollout_skips_the_waves(
    tmp_path: Path,
) -> None:
    key = ssh_key(tmp_path, "alice")
    signers = allowed_signers(tmp_path / "allowed_signers", {"alice@example.org": key})
    signing: dict[str, Any] = {"allowed-signers": signers}
    fleet = RolloutFleet(tmp_path, **signing)
    fleet.run(LAST)
    urgent = fleet.origin.commit({"templates/web/web.conf.j2": "version 2\n"},
                                 "revert the bad TLS change\n\nRollout: immediate",
                                 signing=ssh_signing(key))
    moved = fleet.run(LAST)
    assert moved.config_commit == urgent and moved.source is not None
    assert moved.source.rollout is None and moved.source.signed_by is not None


def test_a_commit_a_canary_reverted_is_refused_there_and_halts_the_rollout(
    tmp_path: Path,
) -> None:
    fleet = RolloutFleet(tmp_path)
    healthy = '  <health name="serves" run="true"/>\n'
    fleet.commit(1, healthy)
    first = {name: fleet.run(name).config_commit for name in fleet.nodes}
    conf = fleet.nodes[CANARY].root / "etc/web.conf"
    before = conf.read_bytes()
    bad = fleet.commit(2, '  <health name="serves" run="false"/>\n', "breaks serving")
    reverted = fleet.run(CANARY)
    assert (reverted.config_commit, reverted.result) == (bad, "reverted")
    assert conf.read_bytes() == before
    again = fleet.run(CANARY)  # refused now: the last good commit, in sync
    assert (again.config_commit, again.result) == (first[CANARY], "in-sync")
    assert again.source is not None and again.source.stale is not None
    assert f"tip {bad} was refused" in again.source.stale and "reverted: health check" in \
        again.source.stale
    fleet.clock.skip(timedelta(hours=1))
    held = fleet.run(SECOND)
    assert held.config_commit == first[SECOND] and held.source is not None
    assert held.source.rollout == f"halted at wave canary: failed on {CANARY} (commit {bad[:12]})"
    assert fleet.run(CANARY, retry_refused=True).result == "reverted"
    fixed = fleet.commit(3, healthy, "serve again")
    assert (fleet.run(CANARY).config_commit, conf.read_bytes()) == (fixed, b"version 3 on "
                                                                     + CANARY.encode() + b"\n")
