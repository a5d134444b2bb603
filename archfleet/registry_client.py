"""Reading (and writing) manifests, OCI indexes and image configs in a registry over HTTPS.

Speaks the Distribution (OCI) HTTP API v2 with the registry's CA file and Basic auth (the lab's registry is
Distribution 2.8 with htpasswd auth), through urllib only. The parsing is pure and tested without a registry:

    client = RegistryClient.for_spec(fleet.registry.resolve())
    index = client.manifest("archfleet/v2ray", "latest")        # Manifest: media type, digest, size, json
    entries = parse_index(index.json)                            # IndexEntry per platform (attestations flagged)
    digests = resolve_platform_digests(client, "archfleet/v2ray:latest")   # {"linux/amd64": "sha256:..."}

A reference is ``[REGISTRY/]REPOSITORY[:TAG|@DIGEST]``; :func:`parse_reference` splits it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archfleet.errors import InputError, OperationFailed
from archfleet.platforms import Platform, UnknownPlatform
from archfleet.platforms import parse as parse_platform

if TYPE_CHECKING:
    from archfleet.fleet.registry import RegistrySpec

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
# buildx attaches provenance/SBOM as an extra index entry with this annotation and platform unknown/unknown
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"


@dataclass(frozen=True)
class Reference:
    """``172.28.77.1:5000/archfleet/v2ray:latest`` -> registry, repository, tag (or digest)."""

    registry: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest if pinned, else the tag (``latest`` if neither)."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        name = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.digest:
            return f"{name}@{self.digest}"
        return f"{name}:{self.tag or 'latest'}"


def parse_reference(text: str, default_registry: str | None = None) -> Reference:
    """Split an image reference. The first path part is a registry when it has a ``.`` or ``:`` or is localhost.

    ``archfleet/v2ray:latest`` with ``default_registry="r:5000"`` -> Reference("r:5000", "archfleet/v2ray", "latest").
    """
    name, _, digest_text = text.partition("@")
    digest = digest_text or None
    tag: str | None = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    registry: str | None = default_registry
    repository = name
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    if not repository or not all(repository.split("/")) or repository != repository.lower():
        raise InputError(f"{text!r}: not an image reference (REGISTRY/REPOSITORY[:TAG|@DIGEST])")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, repository, tag, digest)


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as the registry returned it; ``digest`` is the sha256 of the exact bytes."""

    media_type: str
    digest: str
    body: bytes

    @property
    def size(self) -> int:
        return len(self.body)

    @property
    def json(self) -> dict[str, Any]:
        value = json.loads(self.body)
        return value if isinstance(value, dict) else {}

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or "manifests" in self.json


@dataclass(frozen=True)
class IndexEntry:
    """One entry of a manifest list / OCI index."""

    digest: str
    media_type: str
    size: int
    platform: Platform | None  # None: no or unknown platform (attestations say unknown/unknown)
    attestation: bool = False

    @property
    def is_image(self) -> bool:
        """A runnable image for a platform (not an attestation, not unknown/unknown)."""
        return not self.attestation and self.platform is not None


def parse_index(index: dict[str, Any]) -> list[IndexEntry]:
    """The entries of a Docker manifest list or OCI index, attestation entries flagged (pure)."""
    entries = []
    for raw in index.get("manifests") or []:
        annotations = raw.get("annotations") or {}
        plat = raw.get("platform") or {}
        platform: Platform | None = None
        if plat.get("os") and plat.get("architecture") and "unknown" not in (plat["os"], plat["architecture"]):
            text = "/".join(p for p in (plat["os"], plat["architecture"], plat.get("variant")) if p)
            try:
                platform = parse_platform(text)
            except UnknownPlatform:
                platform = None
        entries.append(IndexEntry(
            digest=str(raw.get("digest", "")),
            media_type=str(raw.get("mediaType", "")),
            size=int(raw.get("size", 0)),
            platform=platform,
            attestation=ATTESTATION_ANNOTATION in annotations,
        ))
    return entries


def config_platform(config: dict[str, Any]) -> Platform | None:
    """The platform an image CONFIG blob says it is (``os``, ``architecture``, ``variant``); pure."""
    os_name, arch = config.get("os"), config.get("architecture")
    if not os_name or not arch:
        return None
    try:
        return parse_platform("/".join(p for p in (os_name, arch, config.get("variant")) if p))
    except UnknownPlatform:
        return None


def config_labels(config: dict[str, Any]) -> dict[str, str]:
    """The image's labels, from its CONFIG blob (``config.Labels``); pure."""
    labels = (config.get("config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def image_size(manifest: dict[str, Any]) -> int:
    """Compressed size of an image: its config plus its layers, as the registry stores them; pure."""
    return int((manifest.get("config") or {}).get("size", 0)) + sum(int(x.get("size", 0)) for x in manifest.get(
        "layers") or [])


def index_media_type(entries: list[tuple[Platform, str, int, str]]) -> str:
    """A Docker manifest list for Docker image manifests (what `docker manifest create` pushes), an OCI index as
    soon as one entry is an OCI image manifest (what engines with the containerd image store push)."""
    return OCI_INDEX if any(media_type == OCI_MANIFEST for *_, media_type in entries) else DOCKER_MANIFEST_LIST


def manifest_list(entries: list[tuple[Platform, str, int, str]]) -> bytes:
    """The index of (platform, digest, manifest size, manifest media type) entries, of type index_media_type()."""
    manifests = []
    for platform, digest, size, media_type in entries:
        plat: dict[str, str] = {"architecture": platform.architecture, "os": platform.os}
        if platform.variant:
            plat["variant"] = platform.variant
        manifests.append({"mediaType": media_type, "size": size, "digest": digest, "platform": plat})
    body = {"schemaVersion": 2, "mediaType": index_media_type(entries), "manifests": manifests}
    return json.dumps(body, indent=3).encode()


def sha256_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class NotFound(OperationFailed):
    """The registry answered 404: no such repository, tag or blob."""


class RegistryClient:
    """A registry at ``address`` (host:port) over HTTPS, trusting ``ca_file``, with optional Basic auth."""

    def __init__(self, address: str, username: str | None = None, password: str | None = None,
                 ca_file: Path | None = None, timeout: float = 60):
        self.address = address
        self.timeout = timeout
        self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._auth = None
        if username is not None and password is not None:
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self._auth = f"Basic {token}"

    @classmethod
    def for_spec(cls, spec: RegistrySpec) -> RegistryClient:
        """From the fleet's registry section (call ``spec.resolve()`` first for ``lab: true``)."""
        if not spec.address:
            raise InputError("registry: no address (set registry.address, or registry.lab: true)")
        return cls(spec.address, spec.username, spec.password(), spec.ca_file)

    def _request(self, method: str, path: str, headers: dict[str, str] | None = None,
                 data: bytes | None = None) -> tuple[bytes, dict[str, str]]:
        url = f"https://{self.address}/v2/{path}"
        request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context) as response:
                return response.read(), {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace").strip().replace("\n", " ")[:200]
            kind = NotFound if error.code == 404 else OperationFailed
            raise kind(f"registry {self.address}: {method} /v2/{path}: HTTP {error.code} {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise OperationFailed(f"registry {self.address}: {method} /v2/{path}: {reason}") from None

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest or index behind a tag or digest (any of the four media types)."""
        body, headers = self._request("GET", f"{repository}/manifests/{reference}", {"Accept": ACCEPT})
        media_type = headers.get("content-type", "").split(";")[0].strip()
        if media_type not in INDEX_TYPES + IMAGE_TYPES:
            media_type = str(json.loads(body).get("mediaType", media_type))
        return Manifest(media_type, sha256_digest(body), body)

    def blob(self, repository: str, digest: str) -> bytes:
        body, _ = self._request("GET", f"{repository}/blobs/{digest}")
        if sha256_digest(body) != digest:
            raise OperationFailed(f"registry {self.address}: blob {digest} of {repository} does not match its digest")
        return body

    def config(self, repository: str, manifest: Manifest) -> dict[str, Any]:
        """The image CONFIG blob of an image manifest (os, architecture, config.Labels...)."""
        digest = (manifest.json.get("config") or {}).get("digest")
        if not digest:
            raise OperationFailed(f"registry {self.address}: {repository}@{manifest.digest} has no config")
        value = json.loads(self.blob(repository, digest))
        return value if isinstance(value, dict) else {}

    def put_manifest(self, repository: str, tag: str, body: bytes, media_type: str) -> str:
        """Publish a manifest or index under ``tag``; returns its digest."""
        self._request("PUT", f"{repository}/manifests/{tag}", {"Content-Type": media_type}, body)
        return sha256_digest(body)


def resolve_platform_digests(client: RegistryClient, ref: str | Reference) -> dict[str, str]:
    """A tag's per-platform image manifest digests, ``{"linux/amd64": "sha256:...", ...}``.

    For pulling by digest (``REPO@DIGEST``): each host pulls exactly the variant that was verified. Attestation
    entries are skipped. A tag that is a single image (not an index) maps its config's platform to its digest.
    Raises NotFound (exit 1) when the tag does not exist.
    """
    reference = parse_reference(ref, client.address) if isinstance(ref, str) else ref
    top = client.manifest(reference.repository, reference.reference)
    if top.is_index:
        return {str(e.platform): e.digest for e in parse_index(top.json) if e.is_image and e.platform}
    platform = config_platform(client.config(reference.repository, top))
    return {str(platform): top.digest} if platform else {}
