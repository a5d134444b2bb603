"""Reading (and writing) manifests, OCI indexes and image configs in any registry over HTTPS.

Speaks the Distribution (OCI) HTTP API v2 through urllib, authenticating the way Docker does: a request goes out
as it is; a ``401`` with ``WWW-Authenticate: Basic`` is retried with the registry's credentials, one with
``WWW-Authenticate: Bearer realm=...,service=...`` makes the client fetch a token from the realm for the
request's scope (``repository:REPO:pull``, ``pull,push`` for writes; anonymously when there are no
credentials, with Basic credentials or an identity token otherwise), cache it per scope until it expires, and
retry. ``429`` is retried with backoff (``Retry-After`` first). Every failure is one line naming the registry
and the repository. The parsing is pure and tested without a registry:

    client = client_for("ghcr.io", fleet)                       # credentials: archfleet.credentials
    index = client.manifest("acme/web", "1.2")                   # Manifest: media type, digest, size, json
    entries = parse_index(index.json)                            # IndexEntry per platform (attestations flagged)
    digests = resolve_platform_digests(client, "ghcr.io/acme/web:1.2")   # {"linux/amd64": "sha256:...", ...}

References are :mod:`archfleet.references` (Docker's parser); :func:`parse_reference` is its ``parse``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archfleet.credentials import Credentials, credentials_for
from archfleet.errors import InputError, OperationFailed
from archfleet.platforms import Platform, UnknownPlatform
from archfleet.platforms import parse as parse_platform
from archfleet.references import ImageReference, api_host, canonical_registry, parse

if TYPE_CHECKING:
    from archfleet.fleet import Fleet
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


Reference = ImageReference  # the one reference type (archfleet.references); kept under its old name here


def parse_reference(text: str, default_registry: str | None = None) -> ImageReference:
    """:func:`archfleet.references.parse`: Docker's normalization (``redis`` is ``docker.io/library/redis``),
    except that with ``default_registry`` a reference without a registry part is in that registry."""
    return parse(text, default_registry)


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



# --- errors: one line each, naming the registry and the repository ---------------------------------------------


class NotFound(OperationFailed):
    """The registry answered 404: no such repository, tag or blob."""


class RepositoryNotFound(NotFound):
    """404 NAME_UNKNOWN: the repository does not exist in the registry."""


class UnknownRepository(OperationFailed):
    """NAME_UNKNOWN from a client made with ``unknown_repository_fails``: an error of its own, not a missing tag."""


class AuthenticationFailed(OperationFailed):
    """The registry (or its token service) refused the credentials: a wrong user or password."""


class AuthenticationRequired(OperationFailed):
    """The registry wants a login and archfleet has no credentials for it."""


class AccessDenied(OperationFailed):
    """The credentials are right but do not grant what the request needs (insufficient scope, denied)."""


class RateLimited(OperationFailed):
    """429 Too Many Requests, still after the retries."""


# --- WWW-Authenticate -----------------------------------------------------------------------------------------

_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True)
class Challenge:
    """A ``WWW-Authenticate`` challenge: scheme (``basic``, ``bearer``) and its parameters (realm, service,
    scope, error)."""

    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """``Bearer realm="https://auth/token",service="reg",scope="repository:a:pull,push"`` -> Challenge (pure)."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {m[1].lower(): (m[2].replace('\\"', '"') if m[2] is not None else m[3] or "")
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def scope(repository: str, actions: str) -> str:
    """A Distribution token scope: ``repository:acme/web:pull,push``."""
    return f"repository:{repository}:{actions}"


def rate_limit_text(headers: dict[str, str]) -> str:
    """What the registry says its limit is: Docker Hub's ``ratelimit-limit: 100;w=21600`` is "100 requests per
    21600 s"; otherwise the ``Retry-After`` it asked for."""
    limit = headers.get("ratelimit-limit", "")
    match = re.match(r"\s*(\d+)\s*;\s*w=(\d+)", limit)
    if match:
        remaining = headers.get("ratelimit-remaining", "").split(";")[0].strip()
        left = f", {remaining} left" if remaining else ""
        return f"limit {match[1]} pulls per {match[2]} s{left}"
    if headers.get("retry-after"):
        return f"it asked to retry after {headers['retry-after']} s"
    return "no limit stated"


@dataclass(frozen=True)
class RetryPolicy:
    """How 429 answers are retried: ``attempts`` tries in all, waiting ``Retry-After`` (at most ``max_delay``)
    or ``first_delay`` doubling each time."""

    attempts: int = 5
    first_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_delay)
        return min(self.first_delay * 2 ** attempt, self.max_delay)


@dataclass
class Token:
    value: str
    expires: float  # time.monotonic() deadline


def error_codes(body: bytes) -> list[tuple[str, str]]:
    """The Distribution error list of a response body: ``[(code, message), ...]`` (pure; empty when not JSON)."""
    try:
        value = json.loads(body)
    except ValueError:
        return []
    errors = value.get("errors") if isinstance(value, dict) else None
    return [(str(e.get("code", "")), str(e.get("message", ""))) for e in errors or [] if isinstance(e, dict)]


def path_repository(path: str) -> str | None:
    """``acme/web/manifests/1.2`` -> ``acme/web`` (the repository a /v2/ path is about)."""
    match = re.match(r"^(.+?)/(?:manifests|blobs|tags)/", path)
    return match[1] if match else None


class RegistryClient:
    """The registry ``address`` (``docker.io``, ``ghcr.io``, ``host:port``) over HTTPS, trusting the system's CAs
    and ``ca_file``, authenticating with ``credentials`` (or ``username``/``password``) when it asks."""

    def __init__(self, address: str, username: str | None = None, password: str | None = None,
                 ca_file: Path | None = None, timeout: float = 60, *, credentials: Credentials | None = None,
                 retry: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep,
                 unknown_repository_fails: bool = False):
        self.address = canonical_registry(address)
        # NAME_UNKNOWN: UnknownRepository (its own error) instead of RepositoryNotFound (a NotFound, which callers
        # that publish read as "nothing there yet")
        self.unknown_repository_fails = unknown_repository_fails
        self.timeout = timeout
        self.retry = retry
        self._sleep = sleep
        self._ca_file = ca_file
        # ca_file alone first (the system's CAs cost 20 ms of CPU to load); the system's CAs and ca_file (what is
        # trusted) from the first certificate ca_file does not verify on (a token service, a storage redirect)
        self._context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else self._trusted_context()
        self._context_is_ca_file_alone = bool(ca_file)
        if credentials is None and username is not None and password is not None:
            credentials = Credentials(username, password, f"registry {self.address} login")
        self.credentials = credentials
        self._basic = False  # the registry asked for Basic: send it on every request
        self._bearer: Challenge | None = None  # the registry's token service, once it named it
        self._tokens: dict[tuple[str, ...], Token] = {}

    @classmethod
    def for_spec(cls, spec: RegistrySpec) -> RegistryClient:
        """From the fleet's registry section (call ``spec.resolve()`` first for ``lab: true``)."""
        if not spec.address:
            raise InputError("registry: no address (set registry.address, or registry.lab: true)")
        return cls(spec.address, spec.username, spec.password(), spec.ca_file)

    # -- authentication --

    def _who(self) -> str:
        if self.credentials is None:
            return "anonymous"
        user = "an identity token" if self.credentials.identity_token else f"user {self.credentials.username}"
        return f"{user} from {self.credentials.source}"

    def _basic_header(self) -> str:
        assert self.credentials is not None
        pair = f"{self.credentials.username}:{self.credentials.secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def _trusted_context(self) -> ssl.SSLContext:
        """What the client trusts: the system's CAs and ``ca_file``."""
        context = ssl.create_default_context()
        if self._ca_file:
            context.load_verify_locations(cafile=str(self._ca_file))
        return context

    def _open(self, request: urllib.request.Request) -> tuple[int, bytes, dict[str, str]]:
        """Send once: (status, body, lower-cased headers), HTTP errors included; unreachable is OperationFailed."""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context) as response:
                return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as error:
            return error.code, error.read(), {k.lower(): v for k, v in error.headers.items()}
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, ssl.SSLCertVerificationError) and self._context_is_ca_file_alone:
                self._context, self._context_is_ca_file_alone = self._trusted_context(), False
                return self._open(request)  # not signed by ca_file: the system's CAs may know it
            host = urllib.parse.urlsplit(request.full_url).netloc
            raise OperationFailed(f"registry {self.address}: cannot reach {host}: {reason}") from None

    def _token(self, scopes: Sequence[str], what: str, fresh: bool = False) -> str:
        """A token for ``scopes`` from the registry's token service (cached until it expires)."""
        assert self._bearer is not None
        realm = self._bearer.params.get("realm", "")
        service = self._bearer.params.get("service", "")
        key = (realm, service, *sorted(scopes))
        cached = self._tokens.get(key)
        if cached and not fresh and cached.expires > time.monotonic():
            return cached.value
        if not realm.startswith("https://"):
            raise OperationFailed(f"registry {self.address}: {what}: the token service {realm!r} is not https")
        creds = self.credentials
        if creds is not None and creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.secret, "service": service,
                    "scope": " ".join(scopes), "client_id": "archfleet"}
            request = urllib.request.Request(realm, data=urllib.parse.urlencode(form).encode(), method="POST",
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            query = [("service", service)] if service else []
            query += [("scope", s) for s in scopes]
            if creds is not None:
                query.append(("account", creds.username))
            separator = "&" if "?" in realm else "?"
            request = urllib.request.Request(realm + (separator + urllib.parse.urlencode(query) if query else ""))
            if creds is not None:
                request.add_unredirected_header("Authorization", self._basic_header())
        status, body, _ = self._send_with_retries(request, what)
        if status in (401, 403):
            if creds is None:
                raise AuthenticationRequired(
                    f"registry {self.address}: {what}: the token service wants a login and no credentials are "
                    f"configured (add registries.{self.address} to the fleet file, or `docker login`)")
            raise AuthenticationFailed(f"registry {self.address}: {what}: wrong username or password "
                                       f"({self._who()}; token service {realm})")
        if status != 200:
            raise OperationFailed(f"registry {self.address}: {what}: token service {realm}: HTTP {status}")
        try:
            answer = json.loads(body)
            value = str(answer.get("token") or answer.get("access_token"))
        except (ValueError, AttributeError):
            raise OperationFailed(f"registry {self.address}: {what}: token service {realm} sent no token") from None
        lifetime = float(answer.get("expires_in") or 60)  # the spec's default: 60 seconds
        self._tokens[key] = Token(value, time.monotonic() + max(lifetime - 10, 1))
        return value

    def _send_with_retries(self, request: urllib.request.Request, what: str) -> tuple[int, bytes, dict[str, str]]:
        """Send, retrying 429 with backoff; the last 429 is RateLimited naming the registry and the limit."""
        started = time.monotonic()
        for attempt in range(self.retry.attempts):
            status, body, headers = self._open(request)
            if status != 429:
                return status, body, headers
            if attempt + 1 < self.retry.attempts:
                self._sleep(self.retry.delay(attempt, headers.get("retry-after")))
        raise RateLimited(f"registry {self.address}: {what}: rate limit reached (HTTP 429, {rate_limit_text(headers)})"
                          f"; gave up after {self.retry.attempts} tries in {time.monotonic() - started:.0f} s")

    # -- requests --

    def _request(self, method: str, path: str, headers: dict[str, str] | None = None, data: bytes | None = None,
                 actions: str | None = None, extra_scopes: Sequence[str] = (),
                 ok: Sequence[int] = (200,)) -> tuple[int, bytes, dict[str, str]]:
        """One API call, authenticating as the registry asks. ``actions``: the scope this call needs (``pull``
        for reads, ``pull,push`` for writes by default)."""
        repository = path_repository(path) or path.split("?")[0].rstrip("/")
        wanted = actions or ("pull" if method in ("GET", "HEAD") else "pull,push")
        scopes = [scope(repository, wanted), *extra_scopes] if repository else list(extra_scopes)
        what = f"repository {repository}" if repository else "/v2/"
        url = f"https://{api_host(self.address)}/v2/{path}"
        retried_auth = False
        while True:
            request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
            if self._bearer is not None:
                request.add_unredirected_header("Authorization", "Bearer " + self._token(scopes, what))
            elif self._basic and self.credentials is not None:
                request.add_unredirected_header("Authorization", self._basic_header())
            status, body, response_headers = self._send_with_retries(request, what)
            if status in ok:
                return status, body, response_headers
            if status == 401:
                challenge = parse_challenge(response_headers.get("www-authenticate", ""))
                if challenge is None or challenge.scheme not in ("basic", "bearer"):
                    raise OperationFailed(f"registry {self.address}: {what}: HTTP 401 without a usable challenge")
                if retried_auth:
                    self._refused(challenge, what, wanted)
                retried_auth = True
                if challenge.scheme == "basic":
                    if self.credentials is None:
                        raise AuthenticationRequired(
                            f"registry {self.address}: {what}: the registry wants a login and no credentials are "
                            f"configured (add registries.{self.address} to the fleet file, or `docker login`)")
                    if self.credentials.identity_token:
                        raise AuthenticationFailed(f"registry {self.address}: {what}: an identity token cannot be "
                                                   "used with Basic auth")
                    self._basic = True
                    continue
                asked = challenge.params.get("scope")
                if asked and asked not in scopes:
                    scopes = [*scopes, *asked.split(" ")]
                self._bearer = challenge
                self._token(scopes, what, fresh=True)
                continue
            self._fail(status, body, what, method, path, wanted)

    def _refused(self, challenge: Challenge, what: str, actions: str) -> None:
        """A second 401, after authenticating as the registry asked."""
        if challenge.scheme == "basic":
            raise AuthenticationFailed(f"registry {self.address}: {what}: wrong username or password ({self._who()})")
        error = challenge.params.get("error", "")
        if self.credentials is None:
            raise AuthenticationRequired(
                f"registry {self.address}: {what}: anonymous access does not grant {actions} (a private or "
                f"missing repository; add registries.{self.address} to the fleet file, or `docker login`)")
        raise AccessDenied(f"registry {self.address}: {what}: {self._who()} is not granted {actions} "
                           f"({error or 'the token does not cover the request'})")

    def _fail(self, status: int, body: bytes, what: str, method: str, path: str, actions: str) -> None:
        codes = error_codes(body)
        code, message = codes[0] if codes else ("", body.decode(errors="replace").strip()[:200])
        detail = f"{code}: {message}" if code else message
        if status == 404 and code == "NAME_UNKNOWN":
            kind = UnknownRepository if self.unknown_repository_fails else RepositoryNotFound
            raise kind(f"registry {self.address}: {what} does not exist ({code})")
        if status == 404:
            item = path.split("?")[0].removeprefix(f"{what.removeprefix('repository ')}/")
            raise NotFound(f"registry {self.address}: {what}: {item} not found ({detail or 'HTTP 404'})")
        if status == 403 or code == "DENIED":
            raise AccessDenied(f"registry {self.address}: {what}: {self._who()} is denied {actions} ({detail})")
        raise OperationFailed(f"registry {self.address}: {what}: {method} /v2/{path}: HTTP {status} "
                              f"{detail}".rstrip())

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest or index behind a tag or digest (any of the four media types). With
        ``unknown_repository_fails``, a 404 is told apart: an unknown repository (some registries, Distribution
        among them, say MANIFEST_UNKNOWN for both; its tag list says NAME_UNKNOWN) or a missing tag."""
        try:
            _, body, headers = self._request("GET", f"{repository}/manifests/{reference}", {"Accept": ACCEPT})
        except RepositoryNotFound:
            raise
        except NotFound:
            if self.unknown_repository_fails:
                self._request("GET", f"{repository}/tags/list")  # raises UnknownRepository for NAME_UNKNOWN
            raise
        media_type = headers.get("content-type", "").split(";")[0].strip()
        if media_type not in INDEX_TYPES + IMAGE_TYPES:
            media_type = str(json.loads(body).get("mediaType", media_type))
        return Manifest(media_type, sha256_digest(body), body)

    def blob(self, repository: str, digest: str) -> bytes:
        _, body, _ = self._request("GET", f"{repository}/blobs/{digest}")
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
        """Publish a manifest or index under ``tag`` (asks for ``pull,push``); returns its digest."""
        self._request("PUT", f"{repository}/manifests/{tag}", {"Content-Type": media_type}, body, ok=(201, 200))
        return sha256_digest(body)

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Make blob ``digest`` of ``from_repository`` part of ``repository`` without uploading it (a cross-
        repository mount: the token asks for ``pull,push`` on the target and ``pull`` on the source). True when
        the registry mounted it; False when it started an ordinary upload instead (that upload is cancelled, and
        the caller uploads the blob itself)."""
        query = urllib.parse.urlencode({"mount": digest, "from": from_repository})
        status, _, headers = self._request(
            "POST", f"{repository}/blobs/uploads/?{query}", data=b"", actions="pull,push",
            extra_scopes=[scope(from_repository, "pull")], ok=(201, 202))
        if status == 201:
            return True
        location = headers.get("location", "")
        if location:
            upload = urllib.parse.urlsplit(location)
            path = upload.path.removeprefix("/v2/") + (f"?{upload.query}" if upload.query else "")
            self._request("DELETE", path, actions="pull,push", ok=(204, 200, 404))
        return False

    def has_blob(self, repository: str, digest: str) -> bool:
        try:
            self._request("HEAD", f"{repository}/blobs/{digest}")
        except NotFound:
            return False
        return True


def client_for(registry: str, source: Fleet | RegistrySpec | None = None, timeout: float = 60) -> RegistryClient:
    """The client for reading ``registry`` (a canonical name) with the credentials and CA archfleet has for it:
    the fleet's own ``registry:`` when it is that one, else its ``registries:`` entry, else ECR, Docker's
    config.json, or anonymous (:func:`archfleet.credentials.credentials_for`). ``source`` is the loaded fleet,
    or just its registry section. An unknown repository is an error of its own (UnknownRepository)."""
    from archfleet.fleet import Fleet

    registry = canonical_registry(registry)
    spec = (source.registry if isinstance(source, Fleet) else source)
    own = spec.resolve() if spec is not None else None
    if own is not None and own.address == registry:
        client = RegistryClient.for_spec(own)
        client.unknown_repository_fails = True
        return client
    entry = source.registries.get(registry) if isinstance(source, Fleet) else None
    credentials = credentials_for(registry, entry)
    return RegistryClient(registry, ca_file=entry.ca_file if entry else None, timeout=timeout,
                          credentials=credentials, unknown_repository_fails=True)


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
