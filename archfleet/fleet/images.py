"""The ``images`` section of the fleet file: the images archfleet builds for every platform and publishes.

    images:
      v2ray:
        context: images/v2ray            # build context (relative to the fleet file)
        dockerfile: Dockerfile           # relative to the context (default Dockerfile)
        platforms: [linux/amd64, linux/arm64]   # the default
        build_args: {BASE_IMAGE: "{registry}/archfleet/debian:bookworm"}
        repository: archfleet/v2ray      # default archfleet/<name>, in the fleet's registry
        tag: latest                      # the default
      debian:
        local_image: archfleet-lab/debian:bookworm-{arch}   # publish existing local images instead of building
        repository: archfleet/debian
        tag: bookworm

``{registry}`` in a build arg is the registry's address; ``{arch}`` in ``local_image`` is the OCI architecture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from archfleet.platforms import Platform, UnknownPlatform
from archfleet.platforms import parse as parse_platform
from archfleet.schema import Mapping

if TYPE_CHECKING:
    from archfleet.fleet import Fleet

DEFAULT_PLATFORMS = ("linux/amd64", "linux/arm64")
DEFAULT_TAG = "latest"
BUILD_ARG_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ImageSpec:
    name: str
    context: Path | None  # None for a ``local_image`` entry
    dockerfile: Path | None
    platforms: tuple[Platform, ...] = tuple(parse_platform(p) for p in DEFAULT_PLATFORMS)
    build_args: dict[str, str] = field(default_factory=dict)  # may contain ``{registry}``
    repository: str = ""
    tag: str = DEFAULT_TAG
    local_image: str | None = None  # ``name:tag-{arch}``: publish local images, one per platform, without building

    def ref(self, registry: str) -> str:
        """The published multi-arch tag: ``REGISTRY/REPOSITORY:TAG``."""
        return f"{registry}/{self.repository}:{self.tag}"

    def platform_tag(self, platform: Platform) -> str:
        """The per-platform tag pushed before the index: ``latest-amd64``, ``latest-arm-v7``."""
        return f"{self.tag}-" + "-".join(p for p in (platform.architecture, platform.variant) if p)

    def resolved_build_args(self, registry: str) -> dict[str, str]:
        return {k: v.replace("{registry}", registry) for k, v in self.build_args.items()}

    def local_image_for(self, platform: Platform) -> str:
        assert self.local_image is not None
        return self.local_image.replace("{arch}", platform.architecture)


def parse_image(name: str, section: Mapping, base_dir: Path) -> ImageSpec:
    local_image = section.string("local_image", None)
    context_text = section.string("context", None)
    dockerfile_text = section.string("dockerfile", None)
    context = dockerfile = None
    if local_image is not None:
        if context_text is not None or dockerfile_text is not None:
            section.fail("local_image", "an image is either built (context, dockerfile) or a local_image, not both")
        if "{arch}" not in local_image:
            section.fail("local_image", "needs {arch} in it (one local image per platform)")
    else:
        if context_text is None:
            section.node.fail(f"missing required key 'images.{name}.context' (or local_image)")
        context = base_dir / context_text
        if not context.is_dir():
            section.fail("context", f"{context} is not a directory")
        dockerfile = context / (dockerfile_text or "Dockerfile")
        if not dockerfile.is_file():
            section.fail("dockerfile" if dockerfile_text else "context", f"{dockerfile}: no such file")
    platforms = []
    platforms_node = section.items.get("platforms")
    for text in section.strings("platforms", list(DEFAULT_PLATFORMS)):
        try:
            platform = parse_platform(text)
        except UnknownPlatform as error:
            (platforms_node or section.node).fail(str(error))
        if platform not in platforms:
            platforms.append(platform)
    if not platforms:
        section.fail("platforms", "needs at least one platform")
    build_args = section.string_map("build_args")
    for arg_name in build_args:
        if not BUILD_ARG_PATTERN.fullmatch(arg_name):
            Mapping(section.items["build_args"]).fail(
                arg_name, "a build argument's name is letters, digits and '_' (not starting with a digit)")
    repository = section.string("repository", f"archfleet/{name}")
    if repository != repository.lower() or not all(repository.split("/")) or ":" in repository:
        section.fail("repository", f"{repository!r} is not a repository path (lowercase, a/b/c)")
    tag = str(section.string("tag", DEFAULT_TAG))
    if not tag or any(c in tag for c in "/:@ ") or len(tag) > 100:
        section.fail("tag", f"{tag!r} is not a valid tag")
    section.done()
    return ImageSpec(name, context, dockerfile, tuple(platforms), build_args, repository, tag, local_image)


def parse_images(section: Mapping | None, fleet: Fleet) -> dict[str, ImageSpec]:
    """Every image by name, in file order (a base image listed first is published first)."""
    if section is None:
        return {}
    images = {}
    base_dir = fleet.base_dir  # resolved once, not once per image
    for name, node in section.entries():
        if not name.replace("-", "").replace("_", "").isalnum() or name != name.lower():
            node.fail("image names are lowercase letters, digits, - and _")
        images[name] = parse_image(name, Mapping(node), base_dir)
    return images
