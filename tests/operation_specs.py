"""A fake host for operation spec tests, in the style of pyinfra's own tests (tests/util.py there).

An operation is called as it is inside a deploy (``op._inner(**arguments)``) with pyinfra's ``host`` bound to a
FakeHost that answers ``get_fact`` from the spec's ``facts`` and records ``noop`` reasons. No SSH, no state.

Facts in a spec are keyed ``<module>.<FactClass>`` (``laptop.LaptopState`` for facts/laptop.py,
``server.Which`` for pyinfra's own). A fact called with arguments may be given per arguments as pyinfra's tests
do: ``{"server.Which": {"command=apt-get": "/usr/bin/apt-get"}}``. When a fact's value and the fact's
``process([])`` (what it says for a host that answers nothing) are both mappings, the spec's keys are laid over
that, so a spec names only the facts that matter to its case (and only keys the fact really has).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import FileUploadCommand, StringCommand
from pyinfra.api.util import get_kwargs_str
from pyinfra.context import ctx_host


class FakeData(dict[str, Any]):
    def __getattr__(self, key: str) -> Any:
        return self.get(key)


@dataclass
class FakeHost:
    facts: dict[str, Any]
    name: str = "fakehost"
    data: FakeData = field(default_factory=FakeData)
    noops: list[str] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    def get_fact(self, cls: type, *args: Any, **kwargs: Any) -> Any:
        module = cls.__module__.removeprefix("pyinfra.").removeprefix("archfleet.facts.")
        key = f"{module}.{cls.__name__}"
        self.asked.append(key)
        if key not in self.facts:
            raise AssertionError(f"the operation asked for fact {key}, which the spec does not give")
        value = self.facts[key]
        arguments = get_kwargs_str(kwargs) if kwargs else ", ".join(str(a) for a in args)
        if arguments and isinstance(value, dict) and arguments in value:
            value = value[arguments]
        empty = cls().process([]) if hasattr(cls, "process") else None
        if isinstance(value, dict) and isinstance(empty, dict):
            unknown = sorted(set(value) - set(empty))
            if unknown:
                raise AssertionError(f"the spec gives {key} keys the fact does not have: {', '.join(unknown)}")
            value = {**empty, **value}
        return value

    def noop(self, description: str) -> None:
        self.noops.append(description)


def command_json(command: Any) -> Any:
    """A command as a spec file writes it: a string, or ``["upload", text, destination]``."""
    if isinstance(command, str):
        return command.strip()
    if isinstance(command, StringCommand):
        return command.get_raw_value()
    if isinstance(command, FileUploadCommand):
        source = command.src
        data = source.getvalue() if hasattr(source, "getvalue") else source
        return ["upload", data.decode() if isinstance(data, bytes) else str(data), command.dest]
    raise AssertionError(f"{command!r} is not a command a spec can describe")


@dataclass
class OperationResult:
    commands: list[Any]
    noops: list[str]


def run_operation(operation: Callable[..., Any], arguments: dict[str, Any], host: FakeHost) -> OperationResult:
    """Call the operation's body as pyinfra does while preparing a deploy; exceptions propagate."""
    inner = getattr(operation, "_inner", operation)
    before = len(host.noops)
    with ctx_host.use(host):
        produced: Iterable[Any] = inner(**arguments) or []
        commands = [command_json(c) for c in produced]
    return OperationResult(commands, host.noops[before:])
