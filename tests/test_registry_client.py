"""The registry client: references, index parsing (Docker lists, OCI indexes with attestations), image configs,
the manifest list archfleet publishes, challenges, Docker config.json credentials; and 429 handling against a
rate-limited registry stand-in on loopback. Token auth against a real Distribution: tests/lab/test_registries.py."""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from archfleet.credentials import config_hostname, from_docker_config
from archfleet.errors import InputError, OperationFailed
from archfleet.platforms import Platform
from archfleet.registry_client import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    Manifest,
    RateLimited,
    RegistryClient,
    RetryPolicy,
    config_labels,
    config_platform,
    error_codes,
    image_size,
    index_media_type,
    manifest_list,
    parse_challenge,
    parse_index,
    parse_reference,
    path_repository,
    rate_limit_text,
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


# --- authentication, rate limits and errors, against a registry stand-in on loopback -----------------------------



def test_bearer_challenge_parameters_keep_commas_inside_quotes() -> None:
    challenge = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                'scope="repository:library/redis:pull,push",error="insufficient_scope"')
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                                "scope": "repository:library/redis:pull,push", "error": "insufficient_scope"}
    basic = parse_challenge('Basic realm="archfleet-lab"')
    assert basic is not None and (basic.scheme, basic.params) == ("basic", {"realm": "archfleet-lab"})
    assert parse_challenge("") is None


def test_rate_limit_text_reads_docker_hubs_headers() -> None:
    assert rate_limit_text({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"}) == (
        "limit 100 pulls per 21600 s, 0 left")
    assert rate_limit_text({"retry-after": "30"}) == "it asked to retry after 30 s"
    assert rate_limit_text({}) == "no limit stated"


def test_error_codes_and_path_repository() -> None:
    assert error_codes(b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}') == [
        ("NAME_UNKNOWN", "repository name not known")]
    assert error_codes(b"<html>") == []
    assert path_repository("acme/web/manifests/1.2") == "acme/web"
    assert path_repository("acme/web/blobs/uploads/?mount=x") == "acme/web"


def test_docker_config_auths_are_matched_by_host_as_docker_does() -> None:
    auth = base64.b64encode(b"acme:hub-token").decode()
    config = {"auths": {"https://index.docker.io/v1/": {"auth": auth},
                        "https://ghcr.io": {"identitytoken": "refresh-me"}}}
    hub = from_docker_config("docker.io", config)
    assert hub is not None and (hub.username, hub.secret) == ("acme", "hub-token")
    ghcr = from_docker_config("ghcr.io", config)
    assert ghcr is not None and ghcr.identity_token and ghcr.secret == "refresh-me"
    assert from_docker_config("quay.io", config) is None
    assert config_hostname("https://registry-1.docker.io/v2/") == "docker.io"


@pytest.fixture(scope="module")
def loopback_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def rate_limited_registry(loopback_tls: tuple[Path, Path]) -> Iterator[tuple[str, list[int]]]:
    """A STAND-IN registry on loopback answering 429 as Docker Hub does (its rate-limit headers), ``limited[0]``
    times, then 200 with an empty index."""
    limited = [2]

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if limited[0] > 0:
                limited[0] -= 1
                self.send_response(429)
                self.send_header("ratelimit-limit", "100;w=21600")
                self.send_header("ratelimit-remaining", "0;w=21600")
                self.send_header("Retry-After", "7")
                self.end_headers()
                self.wfile.write(b'{"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit"}]}')
                return
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", OCI_INDEX)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*loopback_tls)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", limited
    finally:
        server.shutdown()


def test_429_is_retried_after_the_delay_the_registry_asks(rate_limited_registry: tuple[str, list[int]],
                                                         loopback_tls: tuple[Path, Path]) -> None:
    address, _ = rate_limited_registry
    waited: list[float] = []
    client = RegistryClient(address, ca_file=loopback_tls[0], retry=RetryPolicy(attempts=3), sleep=waited.append)
    assert client.manifest("library/redis", "7").is_index
    assert waited == [7.0, 7.0]


def test_429_past_the_retries_is_one_line_naming_registry_repository_and_limit(
        rate_limited_registry: tuple[str, list[int]], loopback_tls: tuple[Path, Path]) -> None:
    address, limited = rate_limited_registry
    limited[0] = 10
    waited: list[float] = []
    client = RegistryClient(address, ca_file=loopback_tls[0], retry=RetryPolicy(attempts=4, max_delay=5),
                            sleep=waited.append)
    with pytest.raises(RateLimited, match=(
            rf"^registry {address}: repository library/redis: rate limit reached \(HTTP 429, limit 100 pulls per "
            r"21600 s, 0 left\); gave up after 4 tries in \d+ s$")):
        client.manifest("library/redis", "7")
    assert waited == [5.0, 5.0, 5.0]  # Retry-After 7, capped by max_delay


def test_a_certificate_ca_file_does_not_sign_is_checked_against_the_systems_cas(
        rate_limited_registry: tuple[str, list[int]], loopback_tls: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ca_file alone is tried first (the system's CAs are slow to load); a certificate it does not sign is then
    checked against the system's CAs and ca_file, so what is trusted is both, as before."""
    address, limited = rate_limited_registry
    limited[0] = 0
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(tmp_path / "other.key"), "-out", str(other_ca), "-days", "1",
                    "-subj", "/CN=another CA"], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))  # the system's CAs: not the registry's either
    with pytest.raises(OperationFailed, match=rf"^registry {address}: cannot reach {address}: .*certificate verify"):
        RegistryClient(address, ca_file=other_ca).manifest("library/redis", "7")
    monkeypatch.setenv("SSL_CERT_FILE", str(loopback_tls[0]))  # now the system trusts the registry's certificate
    client = RegistryClient(address, ca_file=other_ca)
    assert client.manifest("library/redis", "7").is_index
    assert client.manifest("library/redis", "7").is_index  # and keeps trusting both
    assert RegistryClient(address, ca_file=loopback_tls[0]).manifest("library/redis", "7").is_index


# --- the fleet file's registries: section ------------------------------------------------------------------------

FLEET_WITH_REGISTRIES = """\
registry: {address: "r.example:5000"}
registries:
  ghcr.io: {username: acme-bot, password_env: ARCHFLEET_TEST_GHCR_TOKEN}
  123456789012.dkr.ecr.eu-west-1.amazonaws.com: {ecr: true}
  index.docker.io: {username: acme, password_file: hub-token}
  lab.internal:5001: {ecr: {region: eu-west-1, registry_id: "123456789012"}}
"""


def write_fleet(tmp_path: Path, text: str) -> Path:
    (tmp_path / "hub-token").write_text("hub-secret\n")
    (tmp_path / "hub-token").chmod(0o600)
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path


def test_registries_section_names_registries_as_references_do(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from archfleet.fleet import load_fleet
    from archfleet.fleet.registries import EcrAuth

    fleet = load_fleet(write_fleet(tmp_path, FLEET_WITH_REGISTRIES))
    assert sorted(fleet.registries) == ["123456789012.dkr.ecr.eu-west-1.amazonaws.com", "docker.io", "ghcr.io",
                                        "lab.internal:5001"]
    assert fleet.registries["123456789012.dkr.ecr.eu-west-1.amazonaws.com"].ecr == EcrAuth("eu-west-1",
                                                                                            "123456789012")
    assert fleet.registries["docker.io"].password() == "hub-secret"
    monkeypatch.delenv("ARCHFLEET_TEST_GHCR_TOKEN", raising=False)
    with pytest.raises(InputError, match=r"fleet.yaml:3: registries.ghcr.io.password_env: "
                                         r"\$ARCHFLEET_TEST_GHCR_TOKEN is not set$"):
        fleet.registries["ghcr.io"].password()
    monkeypatch.setenv("ARCHFLEET_TEST_GHCR_TOKEN", "ghp_x")
    assert fleet.registries["ghcr.io"].password() == "ghp_x"


@pytest.mark.parametrize(("change", "expected"), [
    (("ghcr.io: {username: acme-bot, password_env: ARCHFLEET_TEST_GHCR_TOKEN}",
      "ghcr.io: {username: acme-bot, password: hunter2}"), "fleet.yaml:3: registries.ghcr.io.password: unknown key"),
    (("ghcr.io: {username: acme-bot, password_env: ARCHFLEET_TEST_GHCR_TOKEN}", "ghcr.io: {username: acme-bot}"),
     "fleet.yaml:3: registries.ghcr.io.username: username goes with password_file or password_env"),
    (("ghcr.io:", "https://ghcr.io:"), "fleet.yaml:3: registries.https://ghcr.io: a registry is named as in image"),
    (("lab.internal:5001: {ecr:", "docker.io: {ecr:"), "fleet.yaml:6: registries.docker.io: docker.io is listed twice"),
    (("{ecr: true}", "{ecr: true, username: x, password_file: hub-token}"),
     "fleet.yaml:4: registries.123456789012.dkr.ecr.eu-west-1.amazonaws.com.ecr: ECR logins come from AWS"),
    (("lab.internal:5001: {ecr: {region: eu-west-1, ", "lab.internal:5001: {ecr: {region: europe, "),
     "fleet.yaml:6: registries.lab.internal:5001.ecr.region: 'europe' is not an AWS region"),
    (("lab.internal:5001: {ecr: {region: eu-west-1, registry_id: \"123456789012\"}}", "lab.internal:5001: {ecr: true}"),
     "fleet.yaml:6: registries.lab.internal:5001.ecr: lab.internal:5001 is not an ECR host"),
    (("registries:\n", "registries:\n  r.example:5000: {}\n"),
     "fleet.yaml:3: registries.r.example:5000: r.example:5000 is the fleet's own registry"),
])
def test_registries_section_errors_name_file_line_and_key(tmp_path: Path, change: tuple[str, str],
                                                          expected: str) -> None:
    from archfleet.fleet import load_fleet

    text = FLEET_WITH_REGISTRIES.replace(*change)
    assert text != FLEET_WITH_REGISTRIES
    with pytest.raises(InputError) as raised:
        load_fleet(write_fleet(tmp_path, text))
    assert str(raised.value).startswith(f"{tmp_path}/{expected}"), str(raised.value)
