"""A local v2ray client for a host's VMess proxy: how a user (and the tests) reach the v2ray service."""

from __future__ import annotations

import json
from typing import Any


def client_config(server: str, port: int, vmess_id: str, socks_port: int, listen: str = "127.0.0.1") -> dict[str, Any]:
    """A v2ray 4.x config: a SOCKS inbound on ``listen:socks_port`` forwarding through VMess to ``server:port``."""
    return {
        "log": {"loglevel": "warning"},
        "inbounds": [{
            "tag": "socks-in", "listen": listen, "port": socks_port, "protocol": "socks",
            "settings": {"auth": "noauth", "udp": False},
        }],
        "outbounds": [{
            "tag": "vmess-out", "protocol": "vmess",
            "settings": {"vnext": [{"address": server, "port": port, "users": [{"id": vmess_id, "alterId": 0}]}]},
        }],
    }


def client_config_text(server: str, port: int, vmess_id: str, socks_port: int) -> str:
    return json.dumps(client_config(server, port, vmess_id, socks_port), indent=2) + "\n"
