"""The ``images`` section of the fleet file. (In progress: only an absent section is accepted so far.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archfleet.schema import Mapping

if TYPE_CHECKING:
    from archfleet.fleet import Fleet


def parse_images(section: Mapping | None, fleet: Fleet) -> dict[str, Any]:
    if section is None:
        return {}
    section.node.fail("this section is not supported yet")
