"""Image references, parsed the way Docker parses them (the grammar and normalization of distribution/reference).

    ref = parse("redis:7")                 # ImageReference("docker.io", "library/redis", tag="7")
    ref.name                                # "docker.io/library/redis"
    ref.familiar                            # "redis:7" (what `docker images` shows)
    parse("ghcr.io/acme/web@sha256:...")    # registry ghcr.io, repository acme/web, pinned by digest
    parse("web:1", default_registry="r:5000")   # archfleet's own short form: r:5000/web:1

Normalization (Docker's): the first path part is a registry when it has a ``.`` or a ``:``, is ``localhost``, or
has an upper-case letter; otherwise the registry is ``docker.io``. ``index.docker.io`` is ``docker.io``. A
one-part repository on Docker Hub gets the ``library/`` prefix. A reference with neither tag nor digest means
``:latest``. A bare 64-hex-digit string is an image id, not a name, and is refused.

``default_registry`` is archfleet's extension for the fleet's own short names (``archfleet images verify
archfleet/v2ray``): a reference without a registry part is in that registry, with no ``library/`` prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from archfleet.errors import InputError

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io")
DOCKER_HUB_API = "registry-1.docker.io"  # where docker.io's /v2/ API answers
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"  # how ~/.docker/config.json names Docker Hub
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
NAME_MAX_LENGTH = 255

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
PATH_COMPONENT = re.compile(rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
DOMAIN = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?")
TAG = re.compile(r"[\w][\w.-]{0,127}")
DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
IMAGE_ID = re.compile(r"[a-f0-9]{64}")


class BadReference(InputError):
    """Not an image reference Docker would accept (exit 2)."""


@dataclass(frozen=True)
class ImageReference:
    """A normalized reference: ``registry`` (``docker.io``, ``ghcr.io``, ``host:port``), ``repository`` (the path
    in that registry: ``library/redis``), and a ``tag`` and/or ``digest``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``REGISTRY/REPOSITORY``: what `docker pull` pulls, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag (``latest`` without either)."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def familiar(self) -> str:
        """The short form Docker shows (``redis:7``, ``acme/web:1``, ``ghcr.io/acme/web:1``)."""
        name = self.name
        if self.registry == DOCKER_HUB:
            name = self.repository
            namespace, _, rest = name.partition("/")
            if namespace == OFFICIAL_NAMESPACE and rest and "/" not in rest:
                name = rest
        return name + self._suffix()

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def with_digest(self, digest: str) -> ImageReference:
        """The same repository pinned to ``digest`` (the tag is dropped: a digest says everything)."""
        return replace(self, tag=None, digest=digest)

    def with_tag(self, tag: str) -> ImageReference:
        return replace(self, tag=tag, digest=None)

    def __str__(self) -> str:
        """The full form: ``docker.io/library/redis:7``, ``REGISTRY/REPO@sha256:...`` (``:latest`` made explicit
        when there is neither tag nor digest)."""
        if self.tag is None and self.digest is None:
            return f"{self.name}:{DEFAULT_TAG}"
        return self.name + self._suffix()


def split_registry(name: str) -> tuple[str | None, str]:
    """(registry or None, the rest) as Docker decides whether the first path part is a registry."""
    first, slash, rest = name.partition("/")
    if not slash:
        return None, name
    if "." in first or ":" in first or first == "localhost" or first != first.lower():
        return first, rest
    return None, name


def canonical_registry(registry: str) -> str:
    """``index.docker.io`` and ``registry-1.docker.io`` are ``docker.io``; other names stay as written."""
    return DOCKER_HUB if registry.lower() in (DOCKER_HUB, *DOCKER_HUB_ALIASES) else registry


def parse(text: str, default_registry: str | None = None) -> ImageReference:
    """Parse and normalize ``text`` (``[REGISTRY/]REPOSITORY[:TAG][@DIGEST]``). Raises BadReference, one line."""
    def bad(reason: str) -> BadReference:
        return BadReference(f"{text!r} is not an image reference: {reason}")

    if not text:
        raise bad("it is empty")
    if "://" in text:
        raise bad("write it without a scheme (REGISTRY/REPOSITORY:TAG)")
    if IMAGE_ID.fullmatch(text):
        raise bad("a 64-hex-digit string is an image id, not a repository name")
    name, at, digest = text.partition("@")
    if at and not DIGEST.fullmatch(digest):
        raise bad(f"invalid digest {digest!r}")
    if digest.startswith("sha256:") and len(digest) != len("sha256:") + 64:
        raise bad(f"a sha256 digest has 64 hex digits, not {len(digest) - len('sha256:')}")
    tag: str | None = None
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name, tag = name[:colon], name[colon + 1:]
        if not TAG.fullmatch(tag):
            raise bad(f"invalid tag {tag!r}")
    registry, path = split_registry(name)
    if registry is not None:
        if not DOMAIN.fullmatch(registry):
            raise bad(f"invalid registry {registry!r}")
        registry = canonical_registry(registry)
    elif default_registry is not None:
        registry = default_registry
    else:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    if path != path.lower():
        raise bad("a repository name is lower case")
    if not all(PATH_COMPONENT.fullmatch(part) for part in path.split("/")):
        raise bad("each path part is lower-case letters and digits, separated by '.', '_', '__' or '-'")
    if len(f"{registry}/{path}") > NAME_MAX_LENGTH:
        raise bad(f"the name is longer than {NAME_MAX_LENGTH} characters")
    return ImageReference(registry, path, tag, digest or None)


def registry_of(text: str, default_registry: str | None = None) -> str:
    """The registry a reference names (``docker.io`` for ``redis:7``)."""
    return parse(text, default_registry).registry


def api_host(registry: str) -> str:
    """Where a registry's ``/v2/`` API answers: ``registry-1.docker.io`` for Docker Hub, else the registry."""
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def docker_config_key(registry: str) -> str:
    """The key Docker uses for a registry in ``config.json`` ``auths`` and when asking a credential helper."""
    return DOCKER_HUB_CONFIG_KEY if registry == DOCKER_HUB else registry


ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


def ecr_region(registry: str) -> str | None:
    """The AWS region of an ECR registry host (``123456789012.dkr.ecr.eu-west-1.amazonaws.com`` -> eu-west-1)."""
    match = ECR_HOST.match(registry.split(":", 1)[0])
    return match["region"] if match else None


def ecr_account(registry: str) -> str | None:
    match = ECR_HOST.match(registry.split(":", 1)[0])
    return match["account"] if match else None
