"""A local v2ray client for a host's VMess proxy: how a user (and the tests) reach the v2ray service."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    body = b"reached through the proxy\n"

    def do_GET(self) -> None:
        self.server.seen.append(self.client_address[0])  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class ProxyProbe:
    server: str
    body: str
    seen_from: list[str]

    @property
    def ok(self) -> bool:
        """The page came back, fetched by the proxy host itself."""
        return self.body == _RecordingHandler.body.decode() and self.seen_from == [self.server]


def fetch_through_proxy(server: str, port: int, vmess_id: str, page_host: str, workdir: Path) -> ProxyProbe:
    """Start a local v2ray client for ``server``, fetch a page from a local HTTP server on ``page_host`` through it
    (with curl's SOCKS5), and record which address the page server saw. All on this machine and the lab."""
    page_server = http.server.ThreadingHTTPServer((page_host, 0), _RecordingHandler)
    page_server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=page_server.serve_forever, daemon=True).start()
    socks = free_port()
    config = workdir / f"v2ray-client-{server}.json"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(client_config_text(server, port, vmess_id, socks))
    try:
        body = fetch_with_client(config, socks, f"http://{page_host}:{page_server.server_port}/")
    finally:
        page_server.shutdown()
        config.unlink(missing_ok=True)
    return ProxyProbe(server, body, list(page_server.seen))  # type: ignore[attr-defined]


def fetch_with_client(config: Path, socks: int, url: str) -> str:
    """``url`` fetched through a local v2ray client run with ``config`` (its SOCKS5 inbound on ``socks``), with
    curl, retried for up to about 20 s while the client starts; "" when it never came back."""
    client = subprocess.Popen(["v2ray", "-config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(40):
            fetched = subprocess.run(["curl", "-s", "--max-time", "10", "--socks5-hostname", f"127.0.0.1:{socks}", url],
                                     capture_output=True, text=True, check=False)
            if fetched.returncode == 0:
                return fetched.stdout
            time.sleep(0.5)
        return ""
    finally:
        client.terminate()
        client.wait()
