"""A STAND-IN for the EC2 instance metadata service (IMDS), which is out of reach here (moto does not serve
``spot/instance-action``): IMDSv2 only, served over HTTP on an address of the test's choosing (the lab gateway,
so that the lab hosts' spot watchers reach it). Used by tests/lab/test_spot_watcher.py and test_ec2_fleet.py."""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class MetadataStandIn:
    """A STAND-IN for the EC2 instance metadata service (IMDSv2 only): PUT latest/api/token, then GETs with the
    token for spot/instance-action and events/recommendations/rebalance (404 until a notice is posted)."""

    instance_action: dict[str, str] | None = None
    rebalance: dict[str, str] | None = None
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    authorized_reads: int = 0
    unauthorized_reads: int = 0

    def answer(self, method: str, path: str, headers: Any) -> tuple[int, str]:
        if method == "PUT":
            if path != "/latest/api/token" or not headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return 400, "bad token request"
            token = secrets.token_urlsafe(24)
            self.tokens.add(token)
            self.token_requests += 1
            return 200, token
        if headers.get("X-aws-ec2-metadata-token") not in self.tokens:
            self.unauthorized_reads += 1
            return 401, "Unauthorized"
        self.authorized_reads += 1
        notice = {"/latest/meta-data/spot/instance-action": self.instance_action,
                  "/latest/meta-data/events/recommendations/rebalance": self.rebalance}.get(path)
        return (200, json.dumps(notice)) if notice else (404, "Not Found")


def serve(standin: MetadataStandIn, address: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def handle_method(self) -> None:
            status, body = standin.answer(self.command, self.path, self.headers)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = handle_method

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((address, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
