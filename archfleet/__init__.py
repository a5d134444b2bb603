"""archfleet: declarative provisioning for mixed arm64/x86 fleets, built on pyinfra."""

__version__ = "0.1.0"
