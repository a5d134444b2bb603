"""The order `archfleet --help` lists the commands in (what a user does first, first; the lab and its demo last)
and one worked example per command and subcommand, shown under its ``--help`` (archfleet.cli adds them)."""

from __future__ import annotations

import argparse

# What a user does first comes first: write a fleet, check it, bootstrap hosts, build images, sync, verify, use.
COMMAND_ORDER = ("init", "check", "hosts", "images", "sync", "verify", "service", "logs", "exec", "releases",
                 "rollback", "lock", "secrets", "spot", "laptop", "completion", "lab", "demo")

EXAMPLES: dict[str, str] = {
    "": "your own hosts, from nothing to a verified proxy:\n"
        "  archfleet init fleet --hosts web-1=203.0.113.5,arm-1=203.0.113.6 --registry ghcr.io --namespace acme\n"
        "  cd fleet && archfleet check && archfleet hosts bootstrap && archfleet images build\n"
        "  archfleet sync && archfleet verify && archfleet service info v2ray",
    "init": "archfleet init fleet --hosts web-1=203.0.113.5,admin@203.0.113.6 --registry ghcr.io \\\n"
            "    --namespace acme --registry-user acme --password-file ~/.config/archfleet/ghcr-token",
    "check": "archfleet check -f fleet.yaml        # offline: the fleet file, its inventory and templates",
    "hosts": "archfleet hosts bootstrap --limit web-1,arm64",
    "hosts bootstrap": "archfleet hosts bootstrap --dry --limit web-1,arm64",
    "hosts forget": "archfleet hosts forget web-1        # after web-1 was rebuilt with a new SSH key",
    "images": "archfleet images build v2ray && archfleet images verify v2ray",
    "images build": "archfleet images build --dry       # which builder builds which platform, nothing built",
    "images verify": "archfleet images verify v2ray --platforms linux/amd64,linux/arm64",
    "sync": "archfleet sync --dry --limit arm64 && archfleet sync",
    "verify": "archfleet verify --limit web-1,web-2 --json",
    "service": "archfleet service info v2ray --limit web-1",
    "service info": "archfleet service info v2ray --limit web-1,web-2   # v2ray: client config and vmess:// link",
    "logs": "archfleet logs v2ray --limit arm64 --since 10m --lines 50   # or --follow",
    "exec": "archfleet exec v2ray -- uname -m    # on each host; one host, interactive: --limit arm64-1 -it -- sh",
    "releases": "archfleet releases v2ray --last 5 --limit arm64",
    "rollback": "archfleet rollback v2ray           # the release before; or --to 20261208T023512Z-3fa9",
    "lock": "archfleet lock status",
    "lock status": "archfleet lock status --json",
    "lock release": "archfleet lock release --limit arm64-1   # after it says what it breaks",
    "secrets": "archfleet secrets pull vmess_id",
    "secrets pull": "archfleet secrets pull vmess_id     # a new laptop: copy the value the hosts run into its file",
    "spot": "archfleet spot prices && archfleet spot up --sync",
    "spot up": "archfleet spot up builders --dry",
    "spot status": "archfleet spot status --json",
    "spot down": "archfleet spot down builders",
    "spot prices": "archfleet spot prices builders",
    "laptop": "archfleet laptop --dry                # this machine; or: archfleet laptop --limit ws-1 inventory.py",
    "completion": "archfleet completion bash > ~/.local/share/bash-completion/completions/archfleet",
    "lab": "archfleet lab up --arm64 2 && archfleet lab status",
    "lab up": "archfleet lab up --amd64 1 --arm64 1",
    "lab status": "archfleet lab status",
    "lab reset": "archfleet lab reset arm64-1",
    "lab down": "archfleet lab down",
    "demo": "archfleet demo                        # lab up, bootstrap, images, sync, verify, CI, v2ray",
}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name, in the order they were added."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def add_examples(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Every (sub)command with an example gets it as its help's epilog, printed as written."""
    if not path:
        parser.epilog = "example: " + EXAMPLES[""]
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for name, sub in subcommands(parser).items():
        key = f"{path} {name}".strip()
        example = EXAMPLES.get(key)
        if example is not None:
            sub.epilog = "example:\n  " + example.replace("\n", "\n  ")
            sub.formatter_class = argparse.RawDescriptionHelpFormatter
        add_examples(sub, key)
