"""Node names: `class-NN.product.cluster.domain`, parsed and formatted in one place."""

from __future__ import annotations

import pytest

from reconciler.compile import names


def test_parse_then_format_gives_the_same_name() -> None:
    for text in ("proxy-01.tickets.chi1.sa", "database-120.events.lax2.sa", "db-7.p.c.example.org"):
        assert str(names.parse(text)) == text


def test_hyphenated_class_takes_everything_before_the_last_hyphen() -> None:
    name = names.parse("web-api-12.tickets.chi1.sa")
    assert (name.cls, name.number, name.product, name.cluster, name.domain) == (
        "web-api", 12, "tickets", "chi1", "sa")
    assert name.host == "web-api-12"


def test_make_pads_the_number_to_its_width() -> None:
    assert names.make("proxy", 3, "tickets", "chi1", "sa").fqdn == "proxy-03.tickets.chi1.sa"
    assert names.make("proxy", 3, "tickets", "chi1", "sa", width=3).host == "proxy-003"


def test_parse_keeps_the_width_of_the_number() -> None:
    assert names.parse("proxy-003.tickets.chi1.sa") == names.make(
        "proxy", 3, "tickets", "chi1", "sa", width=3)


@pytest.mark.parametrize("bad", [
    "proxy-01.tickets.chi1",       # no domain
    "proxy.tickets.chi1.sa",       # no number
    "proxy-.tickets.chi1.sa",      # empty number
    "-01.tickets.chi1.sa",         # empty class
    "Proxy-01.tickets.chi1.sa",    # upper case
    "proxy-01.tickets..sa",        # empty label
    "proxy-01.tick_ets.chi1.sa",   # underscore
    "proxy-01.tickets.chi1.sa.",   # trailing dot
    "",
])
def test_bad_names_are_refused_with_the_name_in_the_message(bad: str) -> None:
    with pytest.raises(names.NodeNameError, match="bad node name"):
        names.parse(bad)
