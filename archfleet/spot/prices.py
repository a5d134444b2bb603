"""Current spot prices per instance type and availability zone, and the cheapest choice.

``current_prices`` and ``cheapest`` are pure (tested on recorded price history); ``fetch_history`` asks EC2.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from archfleet.fleet.spot import SpotFleetSpec
from archfleet.spot.connection import AwsClient

PRODUCT = "Linux/UNIX"
PRODUCTS = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")


@dataclass(frozen=True)
class PoolPrice:
    instance_type: str
    availability_zone: str
    price: float  # USD per instance-hour
    since: datetime.datetime


def _timestamp(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        stamp = value
    else:
        stamp = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.UTC)


def current_prices(history: Iterable[dict[str, Any]], instance_types: Iterable[str] | None = None,
                   zones: Iterable[str] | None = None) -> list[PoolPrice]:
    """The latest price of each (type, AZ) pool in a DescribeSpotPriceHistory answer, cheapest first.

    Entries for other products (Windows, SUSE...) are ignored; a pool's price is its newest entry.
    """
    wanted_types = set(instance_types) if instance_types is not None else None
    wanted_zones = set(zones) if zones is not None else None
    latest: dict[tuple[str, str], PoolPrice] = {}
    for entry in history:
        if entry.get("ProductDescription", PRODUCT) not in PRODUCTS:
            continue
        instance_type, zone = entry["InstanceType"], entry["AvailabilityZone"]
        if (wanted_types is not None and instance_type not in wanted_types) or (
                wanted_zones is not None and zone not in wanted_zones):
            continue
        price = PoolPrice(instance_type, zone, float(entry["SpotPrice"]), _timestamp(entry["Timestamp"]))
        key = (instance_type, zone)
        if key not in latest or price.since > latest[key].since:
            latest[key] = price
    return sorted(latest.values(), key=lambda p: (p.price, p.instance_type, p.availability_zone))


def cheapest(prices: list[PoolPrice], preference: list[str], max_price: float | None = None) -> PoolPrice | None:
    """The cheapest pool at or under ``max_price``; equal prices go to the type listed first in ``preference``."""
    rank = {t: i for i, t in enumerate(preference)}
    affordable = [p for p in prices if max_price is None or p.price <= max_price]
    if not affordable:
        return None
    return min(affordable, key=lambda p: (p.price, rank.get(p.instance_type, len(rank)), p.availability_zone))


def fetch_history(ec2: AwsClient, instance_types: list[str], hours: float = 3.0) -> list[dict[str, Any]]:
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=hours)
    history: list[dict[str, Any]] = []
    with ec2.errors("describing spot price history"):
        paginator = ec2.client.get_paginator("describe_spot_price_history")
        for page in paginator.paginate(InstanceTypes=instance_types, ProductDescriptions=[PRODUCT], StartTime=start):
            history.extend(dict(e) for e in page["SpotPriceHistory"])
    return history


def subnet_zones(ec2: AwsClient, subnets: tuple[str, ...]) -> list[str] | None:
    if not subnets:
        return None
    with ec2.errors("describing subnets"):
        answer = ec2.client.describe_subnets(SubnetIds=list(subnets))
    return sorted({s["AvailabilityZone"] for s in answer["Subnets"]})


def pool_prices(ec2: AwsClient, spec: SpotFleetSpec) -> tuple[list[PoolPrice], PoolPrice | None]:
    """Current prices of the fleet's declared types (in its subnets' AZs, if it names subnets) and the cheapest
    at or under its max price."""
    types = list(spec.instance_types)
    prices = current_prices(fetch_history(ec2, types), types, subnet_zones(ec2, spec.subnets))
    return prices, cheapest(prices, types, spec.max_price)


def format_prices(prices: list[PoolPrice], choice: PoolPrice | None, max_price: float | None) -> list[str]:
    lines = [f"{'TYPE':<12} {'AZ':<14} {'USD/HOUR':>10}  SINCE"]
    for p in prices:
        mark = "  <- cheapest" if p == choice else ("  (over max price)" if max_price and p.price > max_price else "")
        lines.append(f"{p.instance_type:<12} {p.availability_zone:<14} {p.price:>10.5f}  "
                     f"{p.since.strftime('%Y-%m-%d %H:%M')}{mark}")
    if choice is None:
        lines.append("no pool at or under the max price" if prices else "no price history for these types")
    else:
        lines.append(f"cheapest: {choice.instance_type} in {choice.availability_zone} at {choice.price:.5f} USD/hour")
    return lines
