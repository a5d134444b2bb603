"""Price logic on recorded-shape price history (tests/data): moto's prices are one constant."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from archfleet.spot.prices import PoolPrice, cheapest, current_prices, format_prices

HISTORY = json.loads((Path(__file__).parents[1] / "data" / "spot-price-history-eu-west-1.json").read_text())[
    "SpotPriceHistory"]
TYPES = ["t4g.small", "t4g.medium", "t3.small"]


def test_a_pools_price_is_its_newest_linux_entry() -> None:
    prices = {(p.instance_type, p.availability_zone): p.price for p in current_prices(HISTORY, TYPES)}
    assert prices == {
        ("t4g.small", "eu-west-1a"): 0.0063, ("t4g.small", "eu-west-1b"): 0.0056, ("t4g.small", "eu-west-1c"): 0.0058,
        ("t4g.medium", "eu-west-1a"): 0.0119, ("t4g.medium", "eu-west-1b"): 0.0112,
        ("t4g.medium", "eu-west-1c"): 0.0121,
        ("t3.small", "eu-west-1a"): 0.0074, ("t3.small", "eu-west-1b"): 0.0070, ("t3.small", "eu-west-1c"): 0.0076,
    }


def test_prices_are_sorted_cheapest_first_and_undeclared_types_left_out() -> None:
    prices = current_prices(HISTORY, TYPES)
    assert [p.price for p in prices] == sorted(p.price for p in prices)
    assert {p.instance_type for p in prices} == set(TYPES)
    assert {p.instance_type for p in current_prices(HISTORY)} == {
        "t4g.small", "t4g.medium", "c6g.large", "t3.small", "t3.medium"}


def test_cheapest_pool_overall_within_zones_and_under_max_price() -> None:
    prices = current_prices(HISTORY, TYPES)
    best = cheapest(prices, TYPES)
    assert best is not None and (best.instance_type, best.availability_zone, best.price) == (
        "t4g.small", "eu-west-1b", 0.0056)
    in_a_and_c = current_prices(HISTORY, TYPES, zones=["eu-west-1a", "eu-west-1c"])
    best_ac = cheapest(in_a_and_c, TYPES)
    assert best_ac is not None and (best_ac.instance_type, best_ac.availability_zone) == ("t4g.small", "eu-west-1c")
    assert cheapest(prices, TYPES, max_price=0.005) is None
    x86_only = current_prices(HISTORY, ["t3.small", "t3.medium"])
    best_x86 = cheapest(x86_only, ["t3.small", "t3.medium"], max_price=0.0072)
    assert best_x86 is not None and (best_x86.instance_type, best_x86.availability_zone) == ("t3.small", "eu-west-1b")


def test_equal_prices_go_to_the_preferred_type() -> None:
    now = datetime.datetime(2026, 11, 28, tzinfo=datetime.UTC)
    pools = [PoolPrice("t3.small", "eu-west-1a", 0.006, now), PoolPrice("t4g.small", "eu-west-1b", 0.006, now)]
    best = cheapest(pools, ["t4g.small", "t3.small"])
    assert best is not None and best.instance_type == "t4g.small"
    best = cheapest(pools, ["t3.small", "t4g.small"])
    assert best is not None and best.instance_type == "t3.small"


def test_price_table_marks_the_choice_and_pools_over_the_max() -> None:
    prices = current_prices(HISTORY, TYPES)
    lines = format_prices(prices, cheapest(prices, TYPES, 0.007), 0.007)
    assert lines[-1] == "cheapest: t4g.small in eu-west-1b at 0.00560 USD/hour"
    assert any("t4g.small" in line and "eu-west-1b" in line and "<- cheapest" in line for line in lines)
    assert any("t3.small" in line and "eu-west-1c" in line and "(over max price)" in line for line in lines)
