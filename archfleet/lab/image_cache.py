"""The lab registry's storage, kept across `lab down` as a cache of built images.

Building an image for arm64 on the lab runs under QEMU and takes minutes; `archfleet images build` skips a platform
whose published image carries the hash of the build's inputs (its ``archfleet.images.input`` label). So the
registry's storage lives in the cache folder (``/var/cache/archfleet/registry/lab``), and `lab down` keeps of it only
what is a built image keyed by its inputs, whole:

- a tag is kept when every image it names (itself, or each entry of its index) has a config carrying the input
  label, and the repository still links that config, every layer and every child manifest (a registry a test
  damaged on purpose, or a push that was cut off, is not kept);
- every other tag goes (pushed local images, a test's hand-made manifests, tags of a run that was killed), with
  the manifests no kept tag reaches and the repositories left with no tag; then Distribution's own
  ``garbage-collect`` removes the blobs nothing references.

The next `lab up` serves what is left; `images build` still decides from the input hash alone, so a change of any
input (a context file, a build arg, the base image's digest) builds again. Credentials, the CA and the registry's
config are not kept (they are made anew by `lab up`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from archfleet.run import run

V2 = Path("docker") / "registry" / "v2"


@dataclass
class Pruned:
    kept: list[str] = field(default_factory=list)  # REPOSITORY:TAG
    dropped: list[str] = field(default_factory=list)


class Storage:
    """Distribution's filesystem layout under ``root`` (read and pruned while no registry serves it)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.v2 = root / V2

    def blob(self, digest: str) -> Path:
        algorithm, hex_digest = digest.split(":", 1)
        return self.v2 / "blobs" / algorithm / hex_digest[:2] / hex_digest / "data"

    def json_blob(self, digest: str) -> dict[str, Any] | None:
        try:
            document = json.loads(self.blob(digest).read_bytes())
        except (OSError, ValueError):
            return None
        return document if isinstance(document, dict) else None

    def repositories(self) -> list[Path]:
        base = self.v2 / "repositories"
        return sorted(path.parent for path in base.rglob("_manifests")) if base.is_dir() else []


def linked(repository: Path, kind: str, digest: str) -> bool:
    """The repository links ``digest`` (``kind``: ``_layers`` or ``_manifests/revisions``)."""
    algorithm, hex_digest = digest.split(":", 1)
    return (repository / kind / algorithm / hex_digest / "link").is_file()


ATTESTATION = ("vnd.docker.reference.type", "attestation-manifest")  # BuildKit's provenance entries of an index


def built_manifests(storage: Storage, repository: Path, digest: str, label: str | None) -> set[str] | None:
    """The manifests a tag pointing at ``digest`` reaches, when each image among them is a built one (its config
    carries ``label``; an index's attestation entries need only be whole) and whole in ``repository``; None when
    not."""
    manifest = storage.json_blob(digest)
    if manifest is None or not linked(repository, "_manifests/revisions", digest):
        return None
    if "manifests" in manifest:  # an index (manifest list)
        reached = {digest}
        for entry in manifest["manifests"]:
            attestation = (entry.get("annotations") or {}).get(ATTESTATION[0]) == ATTESTATION[1]
            child = built_manifests(storage, repository, str(entry.get("digest", "")), None if attestation else label)
            if child is None:
                return None
            reached |= child
        return reached if len(reached) > 1 else None
    config_digest = str((manifest.get("config") or {}).get("digest", ""))
    config = storage.json_blob(config_digest) if ":" in config_digest else None
    labels = ((config or {}).get("config") or {}).get("Labels") or {}
    if config is None or (label is not None and label not in labels):
        return None
    for blob in [config_digest, *(str(layer.get("digest", "")) for layer in manifest.get("layers") or [])]:
        if ":" not in blob or not storage.blob(blob).is_file() or not linked(repository, "_layers", blob):
            return None
    return {digest}


def prune(root: Path, label: str) -> Pruned:
    """Keep the tags of built images (``label`` on each config) in the storage under ``root``; drop the rest."""
    storage = Storage(root)
    pruned = Pruned()
    for repository in storage.repositories():
        name = repository.relative_to(storage.v2 / "repositories").as_posix()
        tags = repository / "_manifests" / "tags"
        reached: set[str] = set()
        for tag in sorted(tags.iterdir()) if tags.is_dir() else []:
            try:
                digest = (tag / "current" / "link").read_text().strip()
            except OSError:
                digest = ""
            manifests = built_manifests(storage, repository, digest, label) if ":" in digest else None
            if manifests is None:
                shutil.rmtree(tag)
                pruned.dropped.append(f"{name}:{tag.name}")
            else:
                reached |= manifests
                pruned.kept.append(f"{name}:{tag.name}")
        if not reached:
            shutil.rmtree(repository)
            continue
        for algorithm in (repository / "_manifests" / "revisions").iterdir():
            for revision in algorithm.iterdir():
                if f"{algorithm.name}:{revision.name}" not in reached:
                    shutil.rmtree(revision)
        shutil.rmtree(repository / "_uploads", ignore_errors=True)
    remove_empty_folders(storage.v2 / "repositories")
    if storage.v2.is_dir():
        collect_garbage(root)
    return pruned


def remove_empty_folders(base: Path) -> None:
    if not base.is_dir():
        return
    for folder in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def collect_garbage(root: Path) -> None:
    """Distribution's ``garbage-collect``: the blobs no manifest of the storage references are removed."""
    config = {"version": 0.1, "storage": {"filesystem": {"rootdirectory": str(root)}}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yml"
        path.write_text(yaml.safe_dump(config))
        run(["docker-registry", "garbage-collect", str(path)])
