"""`archfleet init [DIR] (--lab | --hosts HOSTS --registry ADDRESS [--namespace NS] [--registry-user USER
--password-file FILE] [--ca-file FILE] [--user USER]) [--force]`: a first fleet.

``--hosts`` writes a commented fleet file for your own hosts and their inventory, ready for `archfleet hosts
bootstrap`, `archfleet images build` and `archfleet sync`: one service (the v2ray proxy, from the shipped image
context and config template, copied beside the fleet file so they are yours to change) on every host.
``--lab`` writes the reference fleet file of the local lab (every key commented) with what it refers to.

The registry's login (``--registry-user`` with ``--password-file``, a chmod-600 file holding the password or token)
and the repository namespace (``--namespace``: images publish as ``REGISTRY/NAMESPACE/v2ray``) are written into the
fleet file. A shared registry (ghcr.io, docker.io) needs the namespace of your user or organisation, so it is
required there; elsewhere it defaults to ``archfleet``. Asked for, when init runs on a terminal and they are not
given (the password itself is read without echo into the file, created 0600, never argv).

Nothing is overwritten without ``--force``: every file is checked before the first one is written. The written
fleet file for ``--hosts`` is loaded back (the same validation every command runs) before init says it is done.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archfleet.errors import InputError
from archfleet.shipped import deploy_file, example_fleet_file, image_contexts_dir, inventory_file

HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HOST_SPEC = re.compile(r"^(?:(?P<user>[A-Za-z_][A-Za-z0-9._-]*)@)?"
                       r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<address>[^:@\s\[\]]+))(?::(?P<port>\d{1,5}))?$")
REGISTRY_ADDRESS = re.compile(r"^[A-Za-z0-9.-]+(?::\d{1,5})?$")
NAMESPACE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
SHARED_REGISTRIES = ("ghcr.io", "docker.io", "registry-1.docker.io", "index.docker.io", "quay.io")
DEFAULT_NAMESPACE = "archfleet"
DEFAULT_PASSWORD_FILE = "~/.config/archfleet/registry-password"


@dataclass(frozen=True)
class RegistryLogin:
    """What init writes into ``registry:`` besides the address, and the namespace images publish under."""

    namespace: str = DEFAULT_NAMESPACE
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None


@dataclass(frozen=True)
class HostSpec:
    """One ``--hosts`` entry: ``[NAME=][USER@]ADDRESS[:PORT]`` (an IPv6 address in brackets)."""

    name: str
    address: str
    user: str | None = None
    port: int | None = None


def parse_hosts(text: str) -> list[HostSpec]:
    """``web-1=10.0.0.5,admin@10.0.0.6:2222`` -> HostSpecs (a name defaults to the address). Bad input: InputError."""
    hosts: list[HostSpec] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            raise InputError(f"init: --hosts: an empty entry in {text!r}")
        name, _, target = entry.rpartition("=")
        match = HOST_SPEC.match(target)
        if not match:
            raise InputError(f"init: --hosts: {entry!r} is not [NAME=][USER@]ADDRESS[:PORT]")
        address = match["v6"] or match["address"]
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 0 < port < 65536:
            raise InputError(f"init: --hosts: {entry!r}: port {port} is not 1-65535")
        name = name or address
        if not HOST_NAME.match(name):
            raise InputError(f"init: --hosts: {name!r} is not a host name (letters, digits, '.', '_', '-')")
        if any(h.name == name for h in hosts):
            raise InputError(f"init: --hosts: {name} is named twice")
        hosts.append(HostSpec(name, address, match["user"], port))
    return hosts


def inventory_text(hosts: list[HostSpec]) -> str:
    """The pyinfra inventory for ``--hosts``: one group, ``servers`` (the fleet file's ``groups:`` name it)."""
    lines = [
        '"""Your hosts, written by `archfleet init`. A pyinfra inventory: each group is a list of (name, host data).',
        "",
        "The fleet file's `groups:` and `hosts:` name these groups and hosts. Host data here wins over the fleet",
        "file's `ssh:` settings: ssh_hostname, ssh_port, ssh_user, ssh_key, _sudo. Add groups (e.g. `arm64`,",
        "`amd64`) to place services by architecture; every host pulls its own platform from the multi-arch tag.",
        '"""',
        "",
        "servers = [",
    ]
    for host in hosts:
        data: dict[str, Any] = {"ssh_hostname": host.address}
        if host.port is not None:
            data["ssh_port"] = host.port
        if host.user is not None:
            data["ssh_user"] = host.user
        lines.append(f"    ({host.name!r}, {data!r}),")
    return "\n".join([*lines, "]", ""])


def registry_lines(login: RegistryLogin) -> str:
    lines = [f"  username: {login.username}" if login.username else "  # username: archfleet",
             f"  password_file: {login.password_file}" if login.password_file
             else f"  # password_file: {DEFAULT_PASSWORD_FILE}",
             f"  ca_file: {login.ca_file}" if login.ca_file else "  # ca_file: certs/registry-ca.crt"]
    return "\n".join(lines)


def fleet_text(registry: str, user: str | None, login: RegistryLogin = RegistryLogin()) -> str:
    """The fleet file for ``--hosts``: every line either a setting or a comment saying what it does."""
    ssh_user = (f"  user: {user}" if user
                else "  # user: admin                  # default root; cloud images: admin, ubuntu, ec2-user")
    return f"""\
# archfleet's fleet file for your own hosts, written by `archfleet init`. What runs where, in one YAML file.
# Every key of every section is documented in the reference fleet file: `archfleet init --lab DIR` writes it.
# Relative paths are relative to this file's folder. Check it any time, offline: `archfleet check`.
#
# Next steps:
#   archfleet check                the file, its inventory and templates, offline
#   archfleet hosts bootstrap      Docker engine, the registry's CA and login, on every host
#   archfleet images build         build v2ray for every platform and publish one multi-arch tag
#   archfleet sync --dry           what would change, host by host; then `archfleet sync`
#   archfleet verify               each host runs its own architecture's image, from the tag
#   archfleet service info v2ray   each host's v2ray client config and vmess:// link

# Where images are published and pulled from. username and password_file go together (chmod 600 the file);
# ca_file: a private CA's certificate (PEM). A registry that needs neither: the address alone.
registry:
  address: {registry}
{registry_lines(login)}

# How archfleet logs in to the hosts (inventory host data wins: ssh_user, ssh_port, ssh_key, _sudo).
# sudo is on whenever the user is not root. Host keys are archfleet's own: a new host's key is recorded on first
# use (its fingerprint printed); a changed key is refused until `archfleet hosts forget HOST`.
ssh:
{ssh_user}
  # key_file: ~/.ssh/id_ed25519
  # known_hosts: ~/.config/archfleet/known_hosts

# Images: each built for every platform in `platforms` (natively on a host of that architecture when the
# inventory has one, else emulated with QEMU on this machine) and published as one multi-arch tag.
images:
  v2ray:
    context: images/v2ray              # copied here by init: Debian's v2ray package on debian:bookworm-slim
    platforms: [linux/amd64, linux/arm64]
    repository: {login.namespace}/v2ray   # REGISTRY/NAMESPACE/NAME: on ghcr.io or docker.io, your user or org
    tag: "4.34"

# The pyinfra inventory (written by init). Its groups are what `groups:` below name.
inventory: inventories/hosts.py

# Services: containers every host of `groups` (or `hosts`) runs, each host pulling its own platform by digest.
# `archfleet sync` rolls them out safely: pull everywhere first, then a canary, then the rest, each host keeping
# its previous container until the new one is healthy.
services:
  # A VMess proxy on every host. The client's id is generated once into the secret file (chmod 600).
  v2ray:
    image: v2ray
    groups: [servers]
    network: host
    ports: [10086]
    files:
      - template: templates/v2ray/config.json.j2   # copied here by init; rendered per host, root-only on the host
        mount: /etc/v2ray/config.json
    vars:
      port: 10086
    secrets:
      vmess_id: {{file: ~/.config/archfleet/v2ray-vmess-id, generate: uuid}}
    healthcheck:
      # listening, without connecting: a probe written into the VMess port is logged as a rejected client
      command: 'grep -qsE ":$(printf %04X 10086) [0-9A-F]+:[0-9A-F]+ 0A " /proc/net/tcp /proc/net/tcp6'
      interval: 2
      retries: 20
"""


def plan_files(args: argparse.Namespace, directory: Path) -> dict[Path, Path | str]:
    """Every file init writes: destination -> a shipped file to copy, or the text to write."""
    if args.lab:
        files: dict[Path, Path | str] = {directory / "fleet.yaml": example_fleet_file(),
                                         directory / "inventories" / "lab.py": inventory_file("lab.py")}
        shipped_templates = deploy_file("templates")
        for source in sorted(shipped_templates.rglob("*")):
            if source.is_file():
                files[directory / "deploys" / "templates" / source.relative_to(shipped_templates)] = source
        names = sorted(path.name for path in image_contexts_dir().iterdir() if path.is_dir())
    else:
        hosts = parse_hosts(args.hosts)
        if not REGISTRY_ADDRESS.match(args.registry):
            raise InputError(f"init: --registry: {args.registry!r} is not HOST[:PORT] (no https://)")
        files = {directory / "fleet.yaml": fleet_text(args.registry, args.user, registry_login(args)),
                 directory / "inventories" / "hosts.py": inventory_text(hosts),
                 directory / "templates" / "v2ray" / "config.json.j2": deploy_file("templates/v2ray/config.json.j2")}
        names = ["v2ray"]
    contexts = image_contexts_dir()
    for name in names:
        for source in sorted((contexts / name).rglob("*")):
            if source.is_file():
                files[directory / "images" / name / source.relative_to(contexts / name)] = source
    return files


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("init", help="write a first fleet file and inventory (your hosts, or the lab)")
    parser.add_argument("directory", nargs="?", default=".", type=Path, metavar="DIR",
                        help="where to write (default: the current directory)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--hosts", metavar="HOSTS",
                        help="your hosts: [NAME=][USER@]ADDRESS[:PORT], comma-separated")
    target.add_argument("--lab", action="store_true", help="the local lab's reference fleet file")
    parser.add_argument("--registry", metavar="ADDRESS", help="with --hosts: the registry, HOST[:PORT]")
    parser.add_argument("--namespace", metavar="NS", help="with --hosts: the repository namespace images publish "
                        f"under (REGISTRY/NS/v2ray); required on ghcr.io and docker.io, else {DEFAULT_NAMESPACE}")
    parser.add_argument("--registry-user", metavar="USER", help="with --hosts: the registry login's user (with "
                                                                "--password-file)")
    parser.add_argument("--password-file", metavar="FILE", help="with --hosts: a chmod-600 file holding the "
                        "registry password or token (GHCR: a PAT with write:packages)")
    parser.add_argument("--ca-file", metavar="FILE", help="with --hosts: the registry's private CA (PEM)")
    parser.add_argument("--user", metavar="USER", help="with --hosts: the SSH user (sudo when not root)")
    parser.add_argument("--force", action="store_true", help="replace files that exist")
    parser.set_defaults(handler=run_init)


def registry_login(args: argparse.Namespace) -> RegistryLogin:
    """The registry login and namespace from the flags (asked for first by :func:`ask_registry_login`)."""
    shared = args.registry.split(":")[0] in SHARED_REGISTRIES
    namespace = args.namespace
    if namespace is None and shared:
        raise InputError(f"init: {args.registry} is shared by everyone: --namespace names your user or organisation "
                         f"there (images publish as {args.registry}/NAMESPACE/v2ray)")
    namespace = namespace or DEFAULT_NAMESPACE
    if not NAMESPACE.match(namespace):
        raise InputError(f"init: --namespace: {namespace!r} is not a repository path (lowercase, a/b)")
    if (args.registry_user is None) != (args.password_file is None):
        raise InputError("init: --registry-user and --password-file go together (both, or neither for a registry "
                         "without login)")
    if args.password_file is not None:
        password_file = Path(args.password_file).expanduser()
        if not password_file.is_file():
            raise InputError(f"init: --password-file: {args.password_file}: no such file (write the registry's "
                             "password or token there, chmod 600)")
    if args.ca_file is not None and not Path(args.ca_file).expanduser().is_file():
        raise InputError(f"init: --ca-file: {args.ca_file}: no such file")
    return RegistryLogin(namespace, args.registry_user, as_written(args.password_file), as_written(args.ca_file))


def as_written(path: str | None) -> str | None:
    """A path from the command line as the fleet file holds it: ``~/...`` as is, else absolute (the fleet file
    reads relative paths against its own folder, not the folder init ran in)."""
    return path if path is None or path.startswith("~") else str(Path(path).resolve())


def ask(prompt: str, default: str = "") -> str:
    answer = input(f"{prompt}{f' [{default}]' if default else ''}: ").strip()
    return answer or default


def ask_registry_login(args: argparse.Namespace) -> None:
    """On a terminal, ask for the namespace and the login that the flags did not give (nothing is asked for
    flags that were given). The password is read without echo into a new 0600 file."""
    if args.namespace is None:
        shared = args.registry.split(":")[0] in SHARED_REGISTRIES
        args.namespace = ask(f"Repository namespace on {args.registry} (images publish as NAMESPACE/v2ray)"
                             + ("; your user or organisation" if shared else ""),
                             "" if shared else DEFAULT_NAMESPACE) or None
    if args.registry_user is None and args.password_file is None:
        args.registry_user = ask(f"User to log in to {args.registry} with (empty: no login)") or None
        if args.registry_user is not None:
            args.password_file = ask("File holding its password or token (chmod 600)", DEFAULT_PASSWORD_FILE)
            path = Path(args.password_file).expanduser()
            if not path.exists():
                import getpass

                secret = getpass.getpass(f"Password or token for {args.registry_user} (saved to {path}, 0600): ")
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secret + "\n")


def run_init(args: argparse.Namespace) -> int:
    if args.hosts is not None and not args.registry:
        raise InputError("init: --hosts needs --registry ADDRESS (where images are published), or use --lab")
    own_registry_flags = (args.namespace, args.registry_user, args.password_file, args.ca_file)
    if args.lab and (args.registry or args.user or any(flag is not None for flag in own_registry_flags)):
        raise InputError("init: --registry, --namespace, --registry-user, --password-file, --ca-file and --user go "
                         "with --hosts (the lab brings its own)")
    if args.hosts is not None and sys.stdin.isatty() and sys.stdout.isatty():
        ask_registry_login(args)
    directory: Path = args.directory
    files = plan_files(args, directory)
    existing = [path for path in files if path.exists()]
    if existing and not args.force:
        raise InputError(f"init: {existing[0]} exists (and {len(existing) - 1} more): --force replaces them"
                         if len(existing) > 1 else f"init: {existing[0]} exists: --force replaces it")
    for destination, source in files.items():
        destination.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            shutil.copyfile(source, destination)
        else:
            destination.write_text(source)
    fleet_file = directory / "fleet.yaml"
    if not args.lab:
        from archfleet.fleet import load_fleet  # the same load every command runs: a bad --hosts is caught here

        load_fleet(fleet_file)
    print(f"archfleet: init: wrote {fleet_file} and {len(files) - 1} more file(s) under {directory}")
    for destination in files:
        print(f"  {destination}")
    print(f"next: archfleet lab up && cd {directory} && archfleet hosts bootstrap && archfleet images build && "
          "archfleet sync && archfleet verify" if args.lab else
          f"next: cd {directory} && archfleet hosts bootstrap && archfleet images build && archfleet sync")
    return 0
