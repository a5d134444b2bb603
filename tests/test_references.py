"""The reference parser against Docker's own normalization cases (the cases of distribution/reference's
normalize_test.go and reference_test.go, written here as data), plus archfleet's default-registry form."""

from __future__ import annotations

import pytest

from archfleet.references import BadReference, api_host, docker_config_key, parse

DIGEST = "sha256:" + "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
HEX64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"


@pytest.mark.parametrize("text", [
    "docker/docker", "library/debian", "debian", "docker.io/docker/docker", "docker.io/library/debian",
    "docker.io/debian", "index.docker.io/docker/docker", "index.docker.io/library/debian", "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker", "127.0.0.1:5000/library/debian", "127.0.0.1:5000/debian", "192.168.0.1",
    "192.168.0.1:80", "192.168.0.1:8/debian", "192.168.0.2:25000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "[fc00::1]:5000/docker",
    "[fc00::1]:5000/docker/docker", "[fc00:1:2:3:4:5:6:7]:5000/library/debian", f"docker.io/{HEX64}",
    "Docker/docker", "DOCKER/docker",
    # valid remote names
    "docker-rules/docker", "docker---rules/docker", "doc/docker", "d/docker", "jess/t", "dock__er/docker",
])
def test_docker_accepts(text: str) -> None:
    parse(text)


@pytest.mark.parametrize("text", [
    "https://github.com/docker/docker", "docker/Docker", "-docker", "-docker/docker", "-docker.io/docker/docker",
    "docker///docker", "docker.io/docker/Docker", "docker.io/docker///docker", "[fc00::1]", "[fc00::1]:5000",
    "fc00::1:5000/debian", "[fe80::1%eth0]:5000/debian", "[2001:db8:3:4::192.0.2.33]:5000/debian", HEX64,
    "docker-/docker", "-docker-/docker", "____/____", "_docker/_docker", "dock..er/docker", "dock_.er/docker",
    "dock-.er/docker", "docker/", "", "a" * 256, "redis:-tag", "redis@sha256:abc", "redis@" + DIGEST[:-1],
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4 + "/docker",
])
def test_docker_refuses(text: str) -> None:
    with pytest.raises(BadReference):
        parse(text)


# (remote name, familiar name, full name, ambiguous name or None, domain): TestParseRepositoryInfo
REPOSITORY_INFO = [
    ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io"),
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io"),
    ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", None, "docker.io"),
    ("other/library", "other/library", "docker.io/other/library", None, "docker.io"),
    ("private/moonbase", "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase", None,
     "127.0.0.1:8000"),
    ("privatebase", "127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase", None, "127.0.0.1:8000"),
    ("private/moonbase", "example.com/private/moonbase", "example.com/private/moonbase", None, "example.com"),
    ("privatebase", "example.com/privatebase", "example.com/privatebase", None, "example.com"),
    ("private/moonbase", "example.com:8000/private/moonbase", "example.com:8000/private/moonbase", None,
     "example.com:8000"),
    ("privatebasee", "example.com:8000/privatebasee", "example.com:8000/privatebasee", None, "example.com:8000"),
    ("library/ubuntu-12.04-base", "ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base",
     "index.docker.io/library/ubuntu-12.04-base", "docker.io"),
    ("library/foo", "foo", "docker.io/library/foo", "docker.io/foo", "docker.io"),
    ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", None, "docker.io"),
    ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", None, "docker.io"),
    ("bar", "Foo/bar", "Foo/bar", None, "Foo"),
    ("bar", "FOO/bar", "FOO/bar", None, "FOO"),
]


@pytest.mark.parametrize(("remote", "familiar", "full", "ambiguous", "domain"), REPOSITORY_INFO)
def test_repository_info(remote: str, familiar: str, full: str, ambiguous: str | None, domain: str) -> None:
    for text in filter(None, (familiar, full, ambiguous)):
        ref = parse(text)
        assert (ref.repository, ref.name, ref.registry) == (remote, full, domain), text
        assert ref.familiar == familiar, text


@pytest.mark.parametrize(("text", "domain", "path"), [
    ("test.com/foo", "test.com", "foo"), ("test_com/foo", "docker.io", "test_com/foo"),
    ("docker/migrator", "docker.io", "docker/migrator"), ("test.com:8080/foo", "test.com:8080", "foo"),
    ("test-com:8080/foo", "test-com:8080", "foo"), ("foo", "docker.io", "library/foo"),
    ("xn--n3h.com/foo", "xn--n3h.com", "foo"), ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
    ("docker.io/foo", "docker.io", "library/foo"), ("docker.io/library/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
    ("localhost/foo", "localhost", "foo"), ("localhost:5000/foo/bar", "localhost:5000", "foo/bar"),
    ("localhost", "docker.io", "library/localhost"),
])
def test_split_hostname(text: str, domain: str, path: str) -> None:
    ref = parse(text)
    assert (ref.registry, ref.repository) == (domain, path)


@pytest.mark.parametrize(("text", "full"), [
    ("redis", "docker.io/library/redis:latest"),
    ("redis:latest", "docker.io/library/redis:latest"),
    ("docker.io/library/redis:latest", "docker.io/library/redis:latest"),
    (f"redis@{DIGEST}", f"docker.io/library/redis@{DIGEST}"),
    (f"docker.io/library/redis@{DIGEST}", f"docker.io/library/redis@{DIGEST}"),
    ("dmcgowan/myapp", "docker.io/dmcgowan/myapp:latest"),
    ("dmcgowan/myapp:latest", "docker.io/dmcgowan/myapp:latest"),
    (f"dmcgowan/myapp@{DIGEST}", f"docker.io/dmcgowan/myapp@{DIGEST}"),
    (HEX64[:-1], f"docker.io/library/{HEX64[:-1]}:latest"),
    ("dbcc1", "docker.io/library/dbcc1:latest"),
    ("test.com:5000", "docker.io/library/test.com:5000"),
    ("test:5000/repo:tag", "test:5000/repo:tag"),
    ("ghcr.io/acme/web:1.2", "ghcr.io/acme/web:1.2"),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:3", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:3"),
])
def test_any_reference_normalizes(text: str, full: str) -> None:
    assert str(parse(text)) == full


def test_tag_and_digest_together_keep_both_and_the_digest_is_what_is_fetched() -> None:
    short = f"busybox:latest@{DIGEST}"
    ref = parse(short)
    assert str(ref) == "docker.io/library/" + short and ref.familiar == short
    assert (ref.tag, ref.digest, ref.reference) == ("latest", DIGEST, DIGEST)
    assert str(ref.with_digest(DIGEST)) == f"docker.io/library/busybox@{DIGEST}"


def test_archfleet_short_names_are_in_the_default_registry_without_library() -> None:
    ref = parse("v2ray:4.34", default_registry="172.28.77.1:5000")
    assert str(ref) == "172.28.77.1:5000/v2ray:4.34"
    assert str(parse("ghcr.io/acme/web", default_registry="r:5000")) == "ghcr.io/acme/web:latest"


def test_docker_hub_is_reached_at_registry_1_and_keyed_by_its_index_url() -> None:
    assert (api_host("docker.io"), docker_config_key("docker.io")) == (
        "registry-1.docker.io", "https://index.docker.io/v1/")
    assert (api_host("ghcr.io"), docker_config_key("ghcr.io")) == ("ghcr.io", "ghcr.io")


def test_errors_are_one_line_naming_the_reference() -> None:
    with pytest.raises(BadReference, match=r"^'Redis/X:1' is not an image reference: a repository name is lower"):
        parse("Redis/X:1")
