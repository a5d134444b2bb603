"""One question to a registry, asked as cheaply as the standard library allows: the digest of the manifest (or
index) behind a tag. It is what a remembered no-op verdict must ask once per tag (archfleet.sync.noop_memo), on
the path where archfleet's own start costs more than the request: ``urllib.request`` and ``http.client`` (with
``email``, ``tempfile``, ``shutil``...) take longer to import than the request takes to answer.

So it speaks HTTP/1.1 itself, over one TLS connection (``ssl`` and ``socket`` only), exactly as
:class:`archfleet.registry_client.RegistryClient` would for this one GET: the request goes out without credentials;
a ``401`` asking for ``Basic`` is asked again, on the same connection, with the registry's credentials. Anything
else (a token service to ask, a redirect, a chunked or unbounded answer, an error, a certificate the CA file alone
does not sign) is not handled here: the answer is None and the caller asks RegistryClient, which handles them all
and says what went wrong. The digest is the sha256 of the body as served, as RegistryClient computes it.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
from typing import BinaryIO

# RegistryClient's ACCEPT: the two index types first, then the two image manifest types
ACCEPT = ("application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, "
          "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
MAX_HEADER_LINES = 100
MAX_BODY = 4 * 1024 * 1024  # the largest manifest Distribution accepts
Response = tuple[int, dict[str, str], bytes]


def host_and_port(api_host: str) -> tuple[str, int]:
    """``"registry:5000"`` -> ``("registry", 5000)``; ``"[::1]:5000"`` -> ``("::1", 5000)``; no port: 443."""
    if api_host.startswith("["):
        host, _, rest = api_host[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 443
    host, colon, port = api_host.rpartition(":")
    return (host, int(port)) if colon and port.isdigit() else (api_host, 443)


def read_response(stream: BinaryIO) -> Response | None:
    """One HTTP/1.1 response from ``stream``: (status, lower-cased headers, body), or None for one that is not
    a plain, bounded answer (no Content-Length, chunked, too large, cut short)."""
    status_line = stream.readline(1024).split(None, 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1.") or not status_line[1].isdigit():
        return None
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = stream.readline(8192)
        if line in (b"\r\n", b"\n"):
            break
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            return None
        headers[name.strip().lower()] = value.strip()
    else:
        return None
    length = headers.get("content-length", "")
    if "transfer-encoding" in headers or not length.isdigit() or int(length) > MAX_BODY:
        return None
    body = stream.read(int(length))
    return (int(status_line[1]), headers, body) if len(body) == int(length) else None


def request_text(api_host: str, path: str, authorization: str | None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {api_host}", f"Accept: {ACCEPT}", "User-Agent: archfleet"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The CA file alone when there is one (as RegistryClient first tries it), else the system's CAs."""
    return ssl.create_default_context(cafile=ca_file or None)


def manifest_digest(api_host: str, repository: str, tag: str, username: str | None, password: str | None,
                    ca_file: str | None, timeout: float = 30) -> str | None:
    """``sha256:...`` of what the registry at ``api_host`` serves for ``repository:tag``, or None when this probe
    cannot tell (see the module's docstring: the caller then asks RegistryClient)."""
    host, port = host_and_port(api_host)
    path = f"/v2/{repository}/manifests/{tag}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                tls_context(ca_file).wrap_socket(raw, server_hostname=host) as connection, \
                connection.makefile("rb") as stream:
            connection.sendall(request_text(api_host, path, None))
            response = read_response(stream)
            if response is not None and response[0] == 401 and username and password is not None \
                    and response[1].get("www-authenticate", "").lower().startswith("basic") \
                    and response[1].get("connection", "").lower() != "close":
                secret = base64.b64encode(f"{username}:{password}".encode()).decode()
                connection.sendall(request_text(api_host, path, f"Basic {secret}"))
                response = read_response(stream)
    except (OSError, ValueError):  # unreachable, refused, TLS (ssl.SSLError is an OSError), a garbled answer
        return None
    if response is None or response[0] != 200:
        return None
    return "sha256:" + hashlib.sha256(response[2]).hexdigest()
