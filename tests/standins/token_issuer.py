"""STAND-IN for a registry token service (Docker Hub's auth.docker.io, GHCR's /token, Harbor's core): the lab
cannot reach the real ones. It implements the Distribution token spec and nothing more:

- ``GET /token?service=S&scope=repository:NAME:ACTIONS&...`` with Basic credentials (or none: anonymous);
  ``POST /token`` with ``grant_type=refresh_token`` (Docker's identity tokens) or ``grant_type=password``;
- answers ``{"token", "access_token", "expires_in", "issued_at"}``: an ES256 JWT whose header carries the
  ``x5c`` chain of the signing certificate (issued by the lab CA, which the registry has as rootcertbundle),
  with claims ``iss``, ``sub``, ``aud`` (the service), ``exp``, ``nbf``, ``iat``, ``jti`` and ``access``;
- wrong credentials: 401. Access is granted per user by fnmatch patterns (``{"private/*": ["pull", "push"]}``);
  a scope the user may not have is left out of the token (the registry then answers insufficient_scope), as real
  token services do;
- each token request is appended as one JSON line to ``--requests`` (account and scopes asked, granted), so
  tests can see what a client asked for (``push,pull`` for a push, a mount's source scope).

    python -m tests.standins.token_issuer --listen 172.28.84.1:5443 --tls-cert C --tls-key K \\
        --signing-key SK --signing-cert SC --issuer ISS --users users.json --requests requests.jsonl

users.json: ``{"users": {"NAME": {"password": "...", "identity_token": "...", "grants": {PATTERN: [ACTIONS]}}},
"anonymous": {PATTERN: [ACTIONS]}, "expires_in": 300}``.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    def __init__(self, signing_key: Path, signing_cert: Path, issuer: str, users: Path, requests: Path):
        key = serialization.load_pem_private_key(signing_key.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.key = key
        cert = x509.load_pem_x509_certificate(signing_cert.read_bytes())
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.issuer = issuer
        self.users_file = users
        self.requests = requests
        self.lock = threading.Lock()

    def config(self) -> dict[str, Any]:
        value = json.loads(self.users_file.read_text())  # read per request: a test may change it
        return value if isinstance(value, dict) else {}

    def account(self, authorization: str | None, form: dict[str, str]) -> tuple[str | None, dict[str, list[str]]]:
        """(account or None for anonymous, its grants); raises PermissionError for wrong credentials."""
        config = self.config()
        users: dict[str, Any] = config.get("users", {})
        if form.get("grant_type") == "refresh_token":
            for name, user in users.items():
                if user.get("identity_token") and secrets.compare_digest(user["identity_token"],
                                                                         form.get("refresh_token", "")):
                    return name, user.get("grants", {})
            raise PermissionError("unknown refresh token")
        if form.get("grant_type") == "password":
            name, password = form.get("username", ""), form.get("password", "")
        elif authorization and authorization.lower().startswith("basic "):
            name, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        else:
            return None, config.get("anonymous", {})
        user = users.get(name)
        if user is None or not secrets.compare_digest(str(user.get("password", "")), password):
            raise PermissionError("wrong username or password")
        return name, user.get("grants", {})

    def token(self, account: str | None, grants: dict[str, list[str]], service: str, scopes: list[str]) -> dict:
        access = []
        for text in scopes:
            for one in text.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind != "repository" or not name:
                    continue
                allowed = {a for pattern, acts in grants.items() if fnmatch.fnmatchcase(name, pattern) for a in acts}
                granted = sorted(a for a in actions.split(",") if a in allowed)
                if granted:
                    access.append({"type": "repository", "name": name, "actions": granted})
        now = int(time.time())
        expires_in = int(self.config().get("expires_in", 300))
        header = {"typ": "JWT", "alg": "ES256", "x5c": self.x5c}
        claims = {"iss": self.issuer, "sub": account or "", "aud": service, "exp": now + expires_in,
                  "nbf": now - 5, "iat": now, "jti": secrets.token_hex(16), "access": access}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        jwt = f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
        with self.lock, self.requests.open("a") as log:
            log.write(json.dumps({"account": account, "service": service, "scopes": scopes,
                                  "granted": access}) + "\n")
        issued_at = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"token": jwt, "access_token": jwt, "expires_in": expires_in, "issued_at": issued_at}


def handler_for(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="archfleet token stand-in"')
            self.end_headers()
            self.wfile.write(data)

        def serve(self, form: dict[str, str], scopes: list[str]) -> None:
            if urllib.parse.urlsplit(self.path).path != "/token":
                self.answer(404, {"details": "not found"})
                return
            try:
                account, grants = issuer.account(self.headers.get("Authorization"), form)
            except PermissionError as error:
                self.answer(401, {"details": str(error)})
                return
            self.answer(200, issuer.token(account, grants, form.get("service", ""), scopes))

        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            self.serve({k: v[0] for k, v in query.items()}, query.get("scope", []))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
            self.serve(form, [form["scope"]] if form.get("scope") else [])

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for option in ("listen", "tls-cert", "tls-key", "signing-key", "signing-cert", "issuer", "users", "requests"):
        parser.add_argument(f"--{option}", required=True)
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    issuer = Issuer(Path(args.signing_key), Path(args.signing_cert), args.issuer, Path(args.users),
                    Path(args.requests))
    server = ThreadingHTTPServer((host, int(port)), handler_for(issuer))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
