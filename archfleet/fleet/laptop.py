"""The laptop profile: the fleet file's ``laptop:`` section, or a YAML file of its own (same keys).

Every key, its default and its type come from ``deploys/laptop_defaults.yaml`` (the commented reference): a
profile overrides only what it names, and a key that is not there, or a value of the wrong type, is an error
naming file, line and key.

    profile = load_profile(Path("my-laptop.yaml"))
    profile["homebrew_formulae"]            # ['git', 'jq']
    profile.conda_environments              # {'data': PosixPath('/home/me/envs/data.yml')}
    profile.remote_nodes                    # [RemoteNode(name='x86', host='x86-box', ...)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from archfleet.platforms import UnknownPlatform
from archfleet.platforms import parse as parse_platform
from archfleet.schema import Mapping, Node, load_yaml
from archfleet.shipped import deploy_file

if TYPE_CHECKING:
    from archfleet.fleet import Fleet

DEFAULTS_FILE = deploy_file("laptop_defaults.yaml")
DOCKER_RUNTIMES = ("desktop", "colima")
CONDA_DISTRIBUTIONS = ("miniforge", "miniconda")
BUILDX_SOURCES = ("auto", "suite", "distribution")


def load_defaults() -> dict[str, Any]:
    values = yaml.safe_load(DEFAULTS_FILE.read_text())
    assert isinstance(values, dict)
    return values


@dataclass(frozen=True)
class RemoteNode:
    """A native buildx node on another machine, reached over SSH."""

    name: str
    platform: str
    host: str | None = None  # an inventory host name (its ssh user and address are looked up at deploy time)
    endpoint: str | None = None  # ssh://user@address


@dataclass
class LaptopProfile:
    source: str
    values: dict[str, Any]
    conda_environments: dict[str, Path] = field(default_factory=dict)
    remote_nodes: list[RemoteNode] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def default_profile() -> LaptopProfile:
    return LaptopProfile(source=str(DEFAULTS_FILE), values=load_defaults())


def _read_value(section: Mapping, key: str, default: Any) -> Any:
    if isinstance(default, bool):
        return section.boolean(key, default)
    if isinstance(default, str):
        return section.string(key, default)
    if isinstance(default, int):
        return section.integer(key, default)
    if isinstance(default, list) and key != "docker_buildx_remote_nodes":
        return section.strings(key, default)
    if isinstance(default, dict) and key != "conda_environments":
        return {**default, **section.string_map(key)}
    raise AssertionError(f"no reader for {key}")


def _remote_nodes(section: Mapping) -> list[RemoteNode]:
    nodes = []
    for item in section.sequence("docker_buildx_remote_nodes"):
        entry = Mapping(item)
        host = entry.string("host", None)
        endpoint = entry.string("endpoint", None)
        if (host is None) == (endpoint is None):
            item.fail("give either host (an inventory host) or endpoint (ssh://user@address)")
        if endpoint is not None and not endpoint.startswith("ssh://"):
            entry.fail("endpoint", "expected ssh://user@address")
        name = entry.string("name", host or "")
        if not name:
            entry.fail("name", "a node given by endpoint needs a name")
        platform = entry.string("platform")
        _check_platform(entry.items["platform"], platform)
        entry.done()
        nodes.append(RemoteNode(name=name, platform=platform, host=host, endpoint=endpoint))
    return nodes


def _check_platform(node: Node, text: str) -> None:
    try:
        parse_platform(text)
    except UnknownPlatform as error:
        node.fail(str(error))


def _choice(section: Mapping, key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        section.fail(key, f"expected one of {', '.join(choices)}, got {value!r}")


def parse_profile(section: Mapping, base_dir: Path) -> LaptopProfile:
    defaults = load_defaults()
    values = {key: _read_value(section, key, default) for key, default in defaults.items()
              if key not in ("docker_buildx_remote_nodes", "conda_environments")}
    values["docker_buildx_remote_nodes"] = []
    values["conda_environments"] = {}
    _choice(section, "docker_runtime", values["docker_runtime"], DOCKER_RUNTIMES)
    _choice(section, "conda_distribution", values["conda_distribution"], CONDA_DISTRIBUTIONS)
    _choice(section, "docker_buildx_source", values["docker_buildx_source"], BUILDX_SOURCES)
    platforms_node = section.items.get("docker_buildx_platforms")
    if platforms_node is not None:
        items = platforms_node.value if isinstance(platforms_node.value, list) else [platforms_node]
        for item, text in zip(items, values["docker_buildx_platforms"], strict=True):
            _check_platform(item, text)
    environments: dict[str, Path] = {}
    for name, path in section.string_map("conda_environments").items():
        file = (base_dir / Path(path).expanduser()).resolve()
        if not file.is_file():
            node = section.items["conda_environments"]
            Mapping(node).fail(name, f"environment file {file} does not exist")
        environments[name] = file
    profile = LaptopProfile(
        source=section.node.file, values=values, conda_environments=environments,
        remote_nodes=_remote_nodes(section),
    )
    section.done()
    return profile


def load_profile(path: Path) -> LaptopProfile:
    """A profile file of its own: the same keys as the fleet file's ``laptop:`` section, at the top."""
    node = load_yaml(path)
    if node.value == {} or node.value is None:
        node = Node({}, 1, "", str(path))
    return parse_profile(Mapping(node), path.resolve().parent)


def find_profile(path: str | None = None) -> LaptopProfile:
    """The profile a run uses: the file ``path`` if given, else the fleet file's ``laptop:`` section (when the
    fleet file exists and has one), else the defaults. Bad input raises InputError before any host is touched."""
    from archfleet.fleet import default_fleet_path, load_fleet

    if path:
        return load_profile(Path(path))
    if default_fleet_path().is_file():
        fleet = load_fleet()
        if fleet.laptop is not None:
            assert isinstance(fleet.laptop, LaptopProfile)
            return fleet.laptop
    return default_profile()


def parse_laptop(section: Mapping | None, fleet: Fleet) -> LaptopProfile | None:
    if section is None:
        return None
    return parse_profile(section, fleet.base_dir)
