"""What archfleet ships besides code, found the same way in the checkout and in an installed package.

The checkout keeps the design card's layout at the top (``deploys/``, ``inventories/``, ``images/``, ``fleet.yaml``);
``archfleet/`` links to each (``archfleet/deploys`` -> ``../deploys``, ``archfleet/shipped/images`` ->
``../../images``), and a wheel holds real copies at the same places. Code asks here, never for "the project root".
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).parent.parent


def deploy_file(name: str) -> Path:
    """``deploys/NAME`` (``host.py``, ``services.py``, ``laptop.py``, ``laptop_defaults.yaml``, ``templates/...``)."""
    return PACKAGE_DIR / "deploys" / name


def inventory_file(name: str) -> Path:
    """``inventories/NAME`` (``lab.py``, ``ec2.py``)."""
    return PACKAGE_DIR / "inventories" / name


def example_fleet_file() -> Path:
    """The commented example fleet file (the lab's fleet, and the reference documentation)."""
    return Path(__file__).parent / "fleet.yaml"


def image_contexts_dir() -> Path:
    """The shipped image build contexts (``images/v2ray``, ``images/buildbot-worker``, ...)."""
    return Path(__file__).parent / "images"
