"""What the source stage remembers between runs, and the commit it decides to run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.errors import Failed
from reconciler.source.state import SourceState, StateFileError, Why, decide


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


# -- last known good -----------------------------------------------------------------

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_new_tip_is_tried() -> None:
    state = SourceState().mark_good("a" * 40, T0)
    decision = decide(state, "b" * 40)
    assert (decision.commit, decision.why) == ("b" * 40, Why.NEW_TIP)


def test_tip_equal_to_last_good_runs_again() -> None:
    state = SourceState().mark_good("a" * 40, T0)
    assert decide(state, "a" * 40).why is Why.UNCHANGED


def test_refused_tip_keeps_the_last_good_commit() -> None:
    state = SourceState().mark_good("a" * 40, T0).mark_refused("b" * 40, "bad XML", T0)
    decision = decide(state, "b" * 40)
    assert (decision.commit, decision.why) == ("a" * 40, Why.REFUSED_TIP)
    assert "bad XML" in decision.detail
    assert decide(state, "b" * 40, retry_refused=True).why is Why.NEW_TIP


def test_a_newer_tip_after_a_refusal_is_tried() -> None:
    state = SourceState().mark_good("a" * 40, T0).mark_refused("b" * 40, "bad XML", T0)
    assert decide(state, "c" * 40).commit == "c" * 40


def test_refused_tip_with_nothing_good_applies_nothing() -> None:
    state = SourceState().mark_refused("b" * 40, "unsigned", T0)
    decision = decide(state, "b" * 40)
    assert (decision.commit, decision.why) == (None, Why.NOTHING)


def test_pin_wins_over_the_tip_until_unpinned() -> None:
    state = SourceState().mark_good("b" * 40, T0).pin("a" * 40, "rollback", T0)
    assert (decide(state, "c" * 40).commit, decide(state, "c" * 40).why) == ("a" * 40, Why.PINNED)
    assert decide(state.unpin(), "c" * 40).why is Why.NEW_TIP


def test_success_forgets_the_refusal_and_sets_staleness() -> None:
    state = SourceState().mark_refused("b" * 40, "bad", T0).mark_good("c" * 40, T0)
    assert state.refused is None
    assert state.staleness(T0 + timedelta(hours=2)) == timedelta(hours=2)
    assert SourceState().staleness() is None


def test_source_state_round_trips_through_its_file(state_dir: Path) -> None:
    state_dir.mkdir()
    path = state_dir / "source-state.json"
    assert SourceState.load(path) == SourceState()
    state = SourceState().mark_good("a" * 40, T0).mark_refused("b" * 40, "bad", T0)
    state.save(path)
    assert SourceState.load(path) == state
    assert json.loads(path.read_text())["refused"]["reason"] == "bad"
    assert [p.name for p in state_dir.iterdir()] == ["source-state.json"]


def test_corrupt_source_state_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "source-state.json"
    path.write_text("{not json")
    with pytest.raises(StateFileError) as caught:
        SourceState.load(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, Failed)
