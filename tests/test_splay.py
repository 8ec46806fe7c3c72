"""When cycles run: the per-node splay offset, anchored to the wall clock, on the
monotonic schedule; and which URL a node fetches from first."""

from __future__ import annotations

import random

import pytest

from reconciler.agent.splay import Schedule, max_jitter, splay_offset
from reconciler.source.cache import spread

CLASSES = ("proxy", "cache", "web-api", "database", "app")
PRODUCTS = ("tickets", "events")
CLUSTERS = ("chi1", "lax2", "fra1", "sgp1", "ams3")


def fleet_names(count: int) -> list[str]:
    """`count` distinct node names shaped like a real fleet's."""
    names = [f"{cls}-{number:02d}.{product}.{cluster}.sa"
             for cls in CLASSES for product in PRODUCTS for cluster in CLUSTERS
             for number in range(1, 100)]
    return names[:count]


def test_offset_is_stable_for_a_node() -> None:
    assert splay_offset("proxy-03.tickets.chi1.sa", 60) == splay_offset(
        "proxy-03.tickets.chi1.sa", 60)


def test_offsets_differ_between_nodes() -> None:
    offsets = {splay_offset(name, 60) for name in fleet_names(1000)}
    assert len(offsets) == 1000


def test_offset_lies_within_the_splay() -> None:
    assert all(0 <= splay_offset(name, 60) < 60 for name in fleet_names(1000))


def test_zero_splay_means_no_offset() -> None:
    assert splay_offset("proxy-03.tickets.chi1.sa", 0) == 0.0


def test_thousand_nodes_spread_evenly_over_the_splay() -> None:
    # The offsets are a hash of the names: deterministic, so this cannot flake. The bounds
    # are those a uniform draw meets with overwhelming probability (10 buckets of 100,
    # standard deviation about 9.5; Kolmogorov-Smirnov 1% critical value 0.0515).
    offsets = sorted(splay_offset(name, 60) / 60 for name in fleet_names(1000))
    buckets = [0] * 10
    for offset in offsets:
        buckets[int(offset * 10)] += 1
    assert all(65 <= count <= 135 for count in buckets), buckets
    ks = max(max((i + 1) / 1000 - x, x - i / 1000) for i, x in enumerate(offsets))
    assert ks < 0.0515


def test_jitter_is_small_and_bounded_by_the_splay() -> None:
    assert max_jitter(300, 60) == 5.0
    assert max_jitter(60, 60) == pytest.approx(1.2)
    assert max_jitter(3600, 0) == 0.0


def test_slots_fall_at_the_offset_of_the_wall_clock_without_jitter() -> None:
    # Started at monotonic 1000 when the wall clock read 3000: the wall reads 17 mod 300
    # at 3017, 17 s later.
    schedule = Schedule(interval=300, offset=17, jitter=0, start=1000, wall=3000)
    assert schedule.due == 1017
    assert schedule.advance(now=1017.5) == 1317
    assert schedule.advance(now=1318) == 1617


def test_the_slot_does_not_depend_on_when_the_agent_started() -> None:
    for started in (3000.0, 3100.5, 3299.0, 3316.9):
        schedule = Schedule(interval=300, offset=17, jitter=0, start=0, wall=started)
        assert (started + schedule.due) % 300 == pytest.approx(17)
        assert 0 <= schedule.due < 300


def test_jitter_delays_each_cycle_within_its_bound() -> None:
    schedule = Schedule(interval=300, offset=0, jitter=5, start=0, wall=0,
                        rng=random.Random(7))
    dues = [schedule.due]
    for _ in range(49):
        dues.append(schedule.advance(now=dues[-1] + 1))  # the cycle took a second
    delays = [due - 300 * k for k, due in enumerate(dues)]
    assert all(0 <= delay <= 5 for delay in delays)
    assert len(set(delays)) > 40


def test_missed_slots_are_skipped_not_run_back_to_back() -> None:
    schedule = Schedule(interval=60, offset=10, jitter=0, start=0, wall=0)
    # the process was suspended (or a cycle overran) for an hour
    assert schedule.advance(now=3605) == 3610
    assert schedule.advance(now=3611) == 3670


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        Schedule(interval=0, offset=0, jitter=0, start=0, wall=0)


def test_a_splay_of_zero_runs_from_the_start_every_interval() -> None:
    schedule = Schedule(interval=60, offset=0, jitter=0, start=500, wall=None)
    assert schedule.due == 500
    assert schedule.advance(now=501) == 560


def test_a_fleet_restarted_at_once_polls_evenly_within_one_interval() -> None:
    # Every agent restarted in the same 10 s: from the next interval on, each polls at its
    # own time of the interval, so 30 buckets of 10 s hold about 1,000 / 30 each.
    interval = 300.0
    restart = random.Random(3)
    polls = [0] * 30
    for name in fleet_names(1000):
        wall = 1_000_000 + restart.uniform(0, 10)
        schedule = Schedule(interval, splay_offset(name, interval), 0, start=0, wall=wall)
        polls[int((wall + schedule.due) % interval // 10)] += 1
    assert max(polls) <= 1.6 * 1000 / 30, polls


def test_each_node_picks_one_url_first_and_keeps_it() -> None:
    remote, mirrors = "git://primary/fleet.git", ["git://m1/fleet.git", "git://m2/fleet.git"]
    orders = [spread(name, remote, mirrors) for name in fleet_names(900)]
    assert orders == [spread(name, remote, mirrors) for name in fleet_names(900)]
    first = [order[0] for order in orders]
    assert all(240 <= first.count(url) <= 360 for url in (remote, *mirrors))


def test_the_remote_comes_right_after_a_mirror_that_was_picked() -> None:
    remote, mirrors = "git://primary/fleet.git", ["git://m1/fleet.git", "git://m2/fleet.git"]
    for name in fleet_names(50):
        order = spread(name, remote, mirrors)
        assert sorted(order) == sorted([remote, *mirrors])
        assert order[0] == remote or order[1] == remote
