"""The fleet file's `images` section: defaults, errors naming file:line:key, and the shipped fleet.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from archfleet.fleet import load_fleet
from archfleet.fleet.images import ImageSpec
from archfleet.platforms import Platform
from archfleet.schema import SchemaError

PROJECT = Path(__file__).resolve().parents[1]


def fleet_file(tmp_path: Path, images: str) -> Path:
    (tmp_path / "ctx").mkdir(exist_ok=True)
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\n")
    path = tmp_path / "fleet.yaml"
    path.write_text("registry: {address: r.example:5000}\nimages:\n" + images)
    return path


def test_defaults(tmp_path: Path) -> None:
    fleet = load_fleet(fleet_file(tmp_path, "  web:\n    context: ctx\n"))
    spec: ImageSpec = fleet.images["web"]
    assert spec.context == tmp_path / "ctx" and spec.dockerfile == tmp_path / "ctx" / "Dockerfile"
    assert spec.platforms == (Platform("linux", "amd64"), Platform("linux", "arm64"))
    assert (spec.repository, spec.tag, spec.build_args, spec.local_image) == ("archfleet/web", "latest", {}, None)
    assert spec.ref("r.example:5000") == "r.example:5000/archfleet/web:latest"


def test_everything_set(tmp_path: Path) -> None:
    fleet = load_fleet(fleet_file(tmp_path, (
        "  web:\n    context: ctx\n    dockerfile: Dockerfile\n    platforms: [linux/arm/v7, linux/aarch64]\n"
        "    build_args: {BASE_IMAGE: '{registry}/base:1', N: 3}\n    repository: team/web\n    tag: '2.0'\n"
        "  base:\n    local_image: 'lab/base:{arch}'\n")))
    web, base = fleet.images["web"], fleet.images["base"]
    assert [str(p) for p in web.platforms] == ["linux/arm/v7", "linux/arm64"]
    assert web.resolved_build_args("r:5000") == {"BASE_IMAGE": "r:5000/base:1", "N": "3"}
    assert (web.repository, web.tag) == ("team/web", "2.0")
    assert base.context is None and base.local_image_for(Platform("linux", "arm64")) == "lab/base:arm64"


@pytest.mark.parametrize(("images", "message"), [
    ("  web: {}\n", ":3: images.web: missing required key 'images.web.context' (or local_image)"),
    ("  web:\n    context: nowhere\n", ":4: images.web.context: "),
    ("  web:\n    context: ctx\n    dockerfile: Other\n", ":5: images.web.dockerfile: "),
    ("  web:\n    context: ctx\n    platforms: [linux/sparc]\n", ":5: images.web.platforms: "),
    ("  web:\n    context: ctx\n    repository: Team/Web\n", ":5: images.web.repository: "),
    ("  web:\n    context: ctx\n    tag: 'a:b'\n", ":5: images.web.tag: "),
    ("  web:\n    context: ctx\n    colour: red\n", ":5: images.web.colour: unknown key"),
    ("  web:\n    context: ctx\n    local_image: 'x:{arch}'\n", ":5: images.web.local_image: "),
    ("  web:\n    local_image: 'x:amd64'\n", ":4: images.web.local_image: needs {arch}"),
    ("  Web:\n    context: ctx\n", ":3: images.Web: image names are lowercase"),
])
def test_errors_name_file_line_and_key(tmp_path: Path, images: str, message: str) -> None:
    with pytest.raises(SchemaError) as error:
        load_fleet(fleet_file(tmp_path, images))
    assert str(error.value).startswith(str(tmp_path / "fleet.yaml")) and message in str(error.value)


@pytest.mark.lab  # the shipped file's inventory is the running lab's (inventories/lab.py)
def test_shipped_fleet_file_declares_the_base_first_then_the_service_images() -> None:
    images = load_fleet(PROJECT / "fleet.yaml").images
    assert list(images)[:3] == ["debian", "v2ray", "buildbot-worker"]
    assert images["debian"].local_image == "archfleet-lab/debian:bookworm-{arch}"
    for name in ("v2ray", "buildbot-worker"):
        assert images[name].build_args["BASE_IMAGE"] == "{registry}/archfleet/debian:bookworm"
        assert [str(p) for p in images[name].platforms] == ["linux/amd64", "linux/arm64"]
