"""When cycles run: the per-node splay offset and the monotonic schedule."""

from __future__ import annotations

import random

import pytest

from reconciler.agent.splay import Schedule, max_jitter, splay_offset

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


def test_slots_follow_start_offset_and_interval_without_jitter() -> None:
    schedule = Schedule(interval=300, offset=17, jitter=0, start=1000)
    assert schedule.due == 1017
    assert schedule.advance(now=1017.5) == 1317
    assert schedule.advance(now=1318) == 1617


def test_jitter_delays_each_cycle_within_its_bound() -> None:
    schedule = Schedule(interval=300, offset=0, jitter=5, start=0, rng=random.Random(7))
    dues = [schedule.due]
    for _ in range(49):
        dues.append(schedule.advance(now=dues[-1] + 1))  # the cycle took a second
    delays = [due - 300 * k for k, due in enumerate(dues)]
    assert all(0 <= delay <= 5 for delay in delays)
    assert len(set(delays)) > 40


def test_missed_slots_are_skipped_not_run_back_to_back() -> None:
    schedule = Schedule(interval=60, offset=10, jitter=0, start=0)
    # the process was suspended (or a cycle overran) for an hour
    assert schedule.advance(now=3605) == 3610
    assert schedule.advance(now=3611) == 3670


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        Schedule(interval=0, offset=0, jitter=0, start=0)
