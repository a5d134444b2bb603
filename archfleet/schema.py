"""Reading YAML with line numbers, for errors that name the file, line and key.

    node = load_yaml(Path("fleet.yaml"))
    top = Mapping(node)
    name = top.string("name")
    for key, service in top.mapping("services").entries():
        ...
    top.done()          # any key nobody read is an error: "fleet.yaml:7: servcies: unknown key"

Every typed section of the fleet file is read through these readers, once, at load time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from archfleet.errors import InputError


class SchemaError(InputError):
    """A fleet-file error: ``file:line: key.path: message``. Exit code 2."""


@dataclass
class Node:
    value: Any  # scalar, dict[str, Node] or list[Node]
    line: int
    path: str
    file: str

    @property
    def where(self) -> str:
        """``file:line``, for errors found after load time (a missing secret file, a template error)."""
        return f"{self.file}:{self.line}"

    def fail(self, message: str) -> NoReturn:
        raise SchemaError(f"{self.where}: {self.path or '(top)'}: {message}")

    @property
    def kind(self) -> str:
        if isinstance(self.value, dict):
            return "a mapping"
        if isinstance(self.value, list):
            return "a list"
        if self.value is None:
            return "nothing"
        return f"{type(self.value).__name__} {self.value!r}"


def _child_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def _convert(node: yaml.Node, path: str, file: str, constructor: yaml.SafeLoader) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)
        items: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                Node(key, key_node.start_mark.line + 1, path, file).fail(f"key {key!r} is not a string")
            if key in items:
                Node(key, key_node.start_mark.line + 1, _child_path(path, key), file).fail("duplicate key")
            child = _convert(value_node, _child_path(path, key), file, constructor)
            child.line = key_node.start_mark.line + 1
            items[key] = child
        return Node(items, line, path, file)
    if isinstance(node, yaml.SequenceNode):
        return Node(
            [_convert(v, _child_path(path, i), file, constructor) for i, v in enumerate(node.value)],
            line, path, file,
        )
    return Node(constructor.construct_object(node, deep=True), line, path, file)


def parse_yaml(text: str, file: str) -> Node:
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                return Node({}, 1, "", file)
            return _convert(root, "", file, loader)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = mark.line + 1 if mark else 0
        raise SchemaError(f"{file}:{line}: not valid YAML: {error.problem}") from None


def load_yaml(path: Path) -> Node:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as error:
        raise InputError(f"{path}: {error.strerror}") from None
    return parse_yaml(text, str(path))


MISSING: Any = object()


class Mapping:
    """A YAML mapping read key by key; ``done()`` rejects keys nobody read."""

    def __init__(self, node: Node):
        if not isinstance(node.value, dict):
            node.fail(f"expected a mapping, got {node.kind}")
        self.node = node
        self.items: dict[str, Node] = node.value
        self.read: set[str] = set()

    def get(self, key: str) -> Node | None:
        self.read.add(key)
        return self.items.get(key)

    def required(self, key: str) -> Node:
        node = self.get(key)
        if node is None or node.value is None:
            self.node.fail(f"missing required key {_child_path(self.node.path, key)!r}")
        return node

    def _typed(self, key: str, default: Any, types: tuple[type, ...], what: str) -> Any:
        node = self.get(key)
        if node is None or node.value is None:
            if default is MISSING:
                self.node.fail(f"missing required key {_child_path(self.node.path, key)!r}")
            return default
        if not isinstance(node.value, types) or (bool not in types and isinstance(node.value, bool)):
            node.fail(f"expected {what}, got {node.kind}")
        return node.value

    def string(self, key: str, default: Any = MISSING) -> Any:
        return self._typed(key, default, (str,), "a string")

    def integer(self, key: str, default: Any = MISSING) -> Any:
        return self._typed(key, default, (int,), "an integer")

    def number(self, key: str, default: Any = MISSING) -> Any:
        return self._typed(key, default, (int, float), "a number")

    def boolean(self, key: str, default: Any = MISSING) -> Any:
        return self._typed(key, default, (bool,), "true or false")

    def strings(self, key: str, default: Any = MISSING) -> Any:
        node = self.get(key)
        if node is None or node.value is None:
            if default is MISSING:
                self.node.fail(f"missing required key {_child_path(self.node.path, key)!r}")
            return default
        if isinstance(node.value, str):
            return [node.value]
        if not isinstance(node.value, list):
            node.fail(f"expected a list of strings, got {node.kind}")
        for item in node.value:
            if not isinstance(item.value, str | int | float) or isinstance(item.value, bool):
                item.fail(f"expected a string, got {item.kind}")
        return [str(item.value) for item in node.value]

    def string_map(self, key: str) -> dict[str, str]:
        """A mapping of names to scalar values (environment, build args, tags), as strings."""
        node = self.get(key)
        if node is None or node.value is None:
            return {}
        result = {}
        for name, value in Mapping(node).entries():
            if isinstance(value.value, dict | list) or value.value is None:
                value.fail(f"expected a string value, got {value.kind}")
            result[name] = str(value.value).lower() if isinstance(value.value, bool) else str(value.value)
        return result

    def mapping(self, key: str, required: bool = False) -> Mapping | None:
        node = self.required(key) if required else self.get(key)
        if node is None or node.value is None:
            return None
        return Mapping(node)

    def sequence(self, key: str) -> list[Node]:
        node = self.get(key)
        if node is None or node.value is None:
            return []
        if not isinstance(node.value, list):
            node.fail(f"expected a list, got {node.kind}")
        return node.value

    def entries(self) -> Iterator[tuple[str, Node]]:
        """Every key (all count as read), for mappings keyed by user-chosen names."""
        for key, node in self.items.items():
            self.read.add(key)
            yield key, node

    def fail(self, key: str, message: str) -> NoReturn:
        node = self.items.get(key, self.node)
        if node is self.node:
            self.node.fail(f"{_child_path(self.node.path, key)}: {message}")
        node.fail(message)

    def done(self) -> None:
        for key, node in self.items.items():
            if key not in self.read:
                node.fail("unknown key")
