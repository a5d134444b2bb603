"""The ``laptop`` section of the fleet file. (In progress: only an absent section is accepted so far.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archfleet.schema import Mapping

if TYPE_CHECKING:
    from archfleet.fleet import Fleet


def parse_laptop(section: Mapping | None, fleet: Fleet) -> Any:
    if section is None:
        return None
    section.node.fail("this section is not supported yet")
