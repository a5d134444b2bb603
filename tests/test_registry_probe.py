"""archfleet.registry_probe's pure parts: the address and the response parser. Its requests are tested against
Distribution itself, with Basic, token auth and a foreign CA (tests/lab/test_registries.py)."""

from __future__ import annotations

import io

from archfleet.registry_probe import host_and_port, read_response, request_text

UNAUTHORIZED = (b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                b"Www-Authenticate: Basic realm=\"archfleet-lab\"\r\nContent-Length: 12\r\n\r\n{\"errors\":1}")
INDEX = b'{"schemaVersion":2}'
OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\n"
      b"Content-Length: %d\r\nDocker-Content-Digest: sha256:x\r\n\r\n%s" % (len(INDEX), INDEX))


def test_an_address_splits_into_host_and_port() -> None:
    assert host_and_port("172.28.82.1:5000") == ("172.28.82.1", 5000)
    assert host_and_port("ghcr.io") == ("ghcr.io", 443)
    assert host_and_port("[::1]:5000") == ("::1", 5000)
    assert host_and_port("[fd00::1]") == ("fd00::1", 443)


def test_two_answers_on_one_connection_read_one_after_the_other() -> None:
    stream = io.BytesIO(UNAUTHORIZED + OK)
    first, second = read_response(stream), read_response(stream)
    assert first is not None and first[0] == 401 and first[1]["www-authenticate"].startswith("Basic")
    assert second == (200, {"content-type": "application/vnd.oci.image.index.v1+json",
                            "content-length": str(len(INDEX)), "docker-content-digest": "sha256:x"}, INDEX)


def test_an_answer_that_is_not_plain_and_bounded_is_left_to_the_client() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n13\r\n" + INDEX + b"\r\n0\r\n\r\n"
    unbounded = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + INDEX
    cut_short = OK[:-3]
    huge = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n"
    garbled = b"SSH-2.0-OpenSSH_9.2\r\n"
    no_colon = b"HTTP/1.1 200 OK\r\nnonsense\r\n\r\n"
    for answer in (chunked, unbounded, cut_short, huge, garbled, no_colon, b""):
        assert read_response(io.BytesIO(answer)) is None, answer


def test_a_request_carries_the_accept_list_and_only_the_authorization_it_is_given() -> None:
    anonymous = request_text("r:5000", "/v2/acme/web/manifests/1", None).decode()
    assert anonymous.startswith("GET /v2/acme/web/manifests/1 HTTP/1.1\r\nHost: r:5000\r\n")
    assert anonymous.endswith("\r\n\r\n") and "Authorization" not in anonymous
    assert "application/vnd.oci.image.index.v1+json" in anonymous
    assert "Authorization: Basic eA==\r\n" in request_text("r:5000", "/v2/x", "Basic eA==").decode()


def test_it_accepts_what_the_client_accepts() -> None:
    """The probe spells the client's Accept list itself (importing the client is what it exists to avoid)."""
    from archfleet import registry_client, registry_probe

    assert registry_probe.ACCEPT == registry_client.ACCEPT
