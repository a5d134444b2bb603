"""Pure parts of the registry client: references, index parsing (Docker lists, OCI indexes with attestations),
image configs, and the manifest list archfleet publishes."""

from __future__ import annotations

import json

import pytest

from archfleet.errors import InputError
from archfleet.platforms import Platform
from archfleet.registry_client import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    Manifest,
    config_labels,
    config_platform,
    image_size,
    index_media_type,
    manifest_list,
    parse_index,
    parse_reference,
    sha256_digest,
)

AMD64 = "sha256:" + "a" * 64
ARM64 = "sha256:" + "b" * 64
ATTEST = "sha256:" + "c" * 64

# What `docker buildx build --platform linux/amd64,linux/arm64 --push` publishes (provenance on): an OCI index
# with one attestation manifest per platform, platform unknown/unknown.
OCI_INDEX_WITH_ATTESTATIONS = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": AMD64, "size": 673,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ARM64, "size": 674,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ATTEST, "size": 566,
         "annotations": {"vnd.docker.reference.digest": AMD64,
                         "vnd.docker.reference.type": "attestation-manifest"},
         "platform": {"architecture": "unknown", "os": "unknown"}},
    ],
}


@pytest.mark.parametrize(("text", "registry", "repository", "reference"), [
    ("172.28.77.1:5000/archfleet/v2ray:latest", "172.28.77.1:5000", "archfleet/v2ray", "latest"),
    ("archfleet/v2ray:4.34", "r:5000", "archfleet/v2ray", "4.34"),
    ("archfleet/v2ray", "r:5000", "archfleet/v2ray", "latest"),
    ("localhost/x@" + AMD64, "localhost", "x", AMD64),
    ("reg.example.com/a/b:c", "reg.example.com", "a/b", "c"),
])
def test_parse_reference(text: str, registry: str, repository: str, reference: str) -> None:
    ref = parse_reference(text, "r:5000")
    assert (ref.registry, ref.repository, ref.reference) == (registry, repository, reference)


def test_reference_round_trips_to_text() -> None:
    assert str(parse_reference("archfleet/v2ray", "r:5000")) == "r:5000/archfleet/v2ray:latest"
    assert str(parse_reference("r:5000/x@" + AMD64)) == f"r:5000/x@{AMD64}"


@pytest.mark.parametrize("text", ["", "Upper/Case:tag", "a//b:c"])
def test_bad_references_are_input_errors(text: str) -> None:
    with pytest.raises(InputError):
        parse_reference(text, "r:5000")


def test_oci_index_attestations_are_flagged_and_arm64_v8_is_arm64() -> None:
    entries = parse_index(OCI_INDEX_WITH_ATTESTATIONS)
    images = [e for e in entries if e.is_image]
    assert [(str(e.platform), e.digest) for e in images] == [("linux/amd64", AMD64), ("linux/arm64", ARM64)]
    (attestation,) = [e for e in entries if not e.is_image]
    assert attestation.attestation and attestation.platform is None and attestation.digest == ATTEST


def test_unknown_platform_without_annotation_is_not_an_image() -> None:
    index = {"manifests": [{"digest": ATTEST, "size": 1, "platform": {"os": "unknown", "architecture": "unknown"}}]}
    (entry,) = parse_index(index)
    assert not entry.attestation and not entry.is_image


def test_docker_manifest_list_with_arm_v7() -> None:
    index = {"mediaType": DOCKER_MANIFEST_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": AMD64, "size": 528,
         "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}}]}
    assert [str(e.platform) for e in parse_index(index)] == ["linux/arm/v7"]


def test_published_manifest_list_parses_back() -> None:
    body = manifest_list([(Platform("linux", "amd64"), AMD64, 528, DOCKER_MANIFEST),
                          (Platform("linux", "arm", "v7"), ARM64, 529, DOCKER_MANIFEST)])
    manifest = Manifest(DOCKER_MANIFEST_LIST, sha256_digest(body), body)
    assert manifest.is_index and manifest.size == len(body)
    assert [(str(e.platform), e.digest, e.size) for e in parse_index(json.loads(body))] == [
        ("linux/amd64", AMD64, 528), ("linux/arm/v7", ARM64, 529)]


def test_an_oci_image_makes_the_published_list_an_oci_index() -> None:
    entries = [(Platform("linux", "amd64"), AMD64, 528, DOCKER_MANIFEST),
               (Platform("linux", "arm64"), ARM64, 529, "application/vnd.oci.image.manifest.v1+json")]
    assert index_media_type(entries) == json.loads(manifest_list(entries))["mediaType"] == OCI_INDEX
    assert index_media_type(entries[:1]) == DOCKER_MANIFEST_LIST


def test_config_platform_and_labels() -> None:
    config = {"architecture": "arm64", "os": "linux", "variant": "v8",
              "config": {"Labels": {"archfleet.images.input": "abc"}}}
    assert config_platform(config) == Platform("linux", "arm64")
    assert config_labels(config) == {"archfleet.images.input": "abc"}
    assert config_platform({"os": "linux"}) is None
    assert config_labels({"config": {"Labels": None}}) == {}


def test_image_size_is_config_plus_layers() -> None:
    manifest = {"config": {"size": 1000}, "layers": [{"size": 20000}, {"size": 300}]}
    assert image_size(manifest) == 21300
