"""Reading YAML with line numbers, for errors that name the file, line and key.

    node = load_yaml(Path("fleet.yaml"))
    top = Mapping(node)
    name = top.string("name")
    for key, service in top.mapping("services").entries():
        ...
    top.done()          # any key nobody read is an error: "fleet.yaml:7: servcies: unknown key (did you mean ...)"

Every typed section of the fleet file is read through these readers, once, at load time.

The YAML is read one way: composed here (`_Composer`) from the parser's events, each with its line (libyaml's C
parser when installed, else PyYAML's own: the same events, so the same tree; a document libyaml refuses is parsed
again by PyYAML's own, so that the message is always in its words), with these rules.

- **No tags**: a tag of any kind (``!!python/object``, ``!!str``, ``!foo``) on any node is an error; the
  non-specific ``!`` alone is allowed, and makes a scalar text (``! 12`` is ``"12"``), as YAML says.
- **Bounded aliases**: at most ``max(MIN_ALIAS_BUDGET, len(text) // 10)`` nodes may come from aliases and at most
  ``max(MIN_ALIAS_COUNT, len(text) // 8)`` aliases may be used; nesting stops at ``MAX_DEPTH``. A "billion
  laughs" file is refused at the first alias over the budget, before it is expanded.
- **Merge keys** (``<<: *defaults`` or ``<<: [*a, *b]``) as YAML 1.1 says: explicit keys override merged ones,
  earlier merged mappings override later ones; an explicit key written twice is still a duplicate.
- **Text stays text**: every scalar keeps the text it was written as (``Node.text``). Where the schema wants text
  (``Mapping.string``, ``strings``, ``string_map``) that text is used, so YAML 1.1's traps do not apply there:
  ``owner: 012345670123`` stays ``"012345670123"`` (not the octal number), ``restart: no`` stays ``"no"`` (not false),
  ``tag: 1.10`` stays ``"1.10"``. Where the schema wants a number, a leading zero (octal in YAML 1.1) or a
  ``1:20`` (base 60) is refused with the reason. A key that YAML 1.1 reads as a boolean, null or number
  (``on:``, ``no:``, ``~:``) is refused: quote it.
- Non-UTF-8 bytes and characters YAML does not allow are one-line errors with their line; for an unclosed quote or
  bracket the line is the one where it opens (and the line where the parser gave up is named too).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from archfleet.errors import InputError

MAX_DEPTH = 64  # nesting of mappings and lists, aliases included
MIN_ALIAS_BUDGET = 100_000  # nodes that aliases may add, at least (more for a bigger file: len(text) // 10)
MIN_ALIAS_COUNT = 10_000  # aliases a file may use, at least (more for a bigger file: len(text) // 8)

# libyaml's parser when PyYAML was built with it; the pure-Python one otherwise (and for error messages).
PURE_LOADER: type = yaml.SafeLoader
DEFAULT_LOADER: type = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

_YAML_TAG_PREFIX = "tag:yaml.org,2002:"
_CONSTRUCTOR = SafeConstructor()
_IMPLICIT_RESOLVERS: dict[str | None, list[tuple[str, re.Pattern[str]]]] = Resolver.yaml_implicit_resolvers
_ANY_START_RESOLVERS = _IMPLICIT_RESOLVERS.get(None, [])
_OPENERS = ("quoted scalar", "flow sequence", "flow mapping", "block scalar")
_OCTAL_IN_YAML_11 = re.compile(r"0[0-7_]+")


class SchemaError(InputError):
    """A fleet-file error: ``file:line: key.path: message``. Exit code 2."""


@dataclass(slots=True)
class Node:
    value: Any  # scalar, dict[str, Node] or list[Node]
    line: int
    path: str
    file: str
    text: str | None = field(default=None, compare=False)  # a scalar as it was written

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

    @property
    def is_scalar(self) -> bool:
        return not isinstance(self.value, (dict, list))  # a tuple: faster than `dict | list`

    def as_text(self) -> str | None:
        """The scalar as written (``0123``, ``no``, ``1.10``), for values the schema reads as text; None for
        nothing, a mapping or a list."""
        value = self.value
        if value is None or isinstance(value, (dict, list)):  # a tuple: faster than `dict | list`
            return None
        if isinstance(value, str):
            return value
        return self.text if self.text is not None else str(value)


def _child_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


# --- scalars --------------------------------------------------------------------------------------------------------


def _plain_value(text: str) -> tuple[Any, str]:
    """What YAML 1.1 makes of a plain (unquoted, untagged) scalar, as PyYAML's resolver and constructor read it:
    (value, tag name)."""
    for tag, pattern in _IMPLICIT_RESOLVERS.get(text[:1], []) + _ANY_START_RESOLVERS:
        if pattern.match(text):
            name = tag.removeprefix(_YAML_TAG_PREFIX)
            if name == "null":
                return None, name
            if name == "bool":
                return _CONSTRUCTOR.bool_values[text.lower()], name
            if name == "int":
                try:
                    return _CONSTRUCTOR.construct_yaml_int(ScalarNode(tag, text)), name
                except ValueError:  # 0b_ or 0x_: YAML 1.1's pattern with no digits (PyYAML raises): text, as in 1.2
                    return text, "str"
            if name == "float":
                return _CONSTRUCTOR.construct_yaml_float(ScalarNode(tag, text)), name
            return text, name  # timestamps, merge (<<) and value (=) keys stay text
    return text, "str"


def number_trap(node: Node) -> str | None:
    """Why a number written this way does not mean what it looks like (YAML 1.1), or None."""
    text = (node.text or "").strip().lstrip("+-")
    if ":" in text:
        return f"{node.text} is the base-60 number {node.value} in YAML 1.1: write {node.value} (or quote text)"
    if _OCTAL_IN_YAML_11.fullmatch(text):
        return (f"{node.text} has a leading zero, which YAML 1.1 reads as the octal number {node.value}: "
                "write it without the leading zero (or quote text)")
    if "_" in text:
        return f"{node.text}: write the number without '_'"
    return None


# --- composing: events -> Node tree ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Frame:
    node: Node
    is_mapping: bool
    anchor: str | None
    size: int = 1  # nodes in this collection, itself included (aliases expanded)
    height: int = 1
    items: list[Node] = field(default_factory=list)  # a list's items
    entries: dict[str, Node] = field(default_factory=dict)  # a mapping's explicit entries
    key: str | None = None  # a mapping's key waiting for its value
    key_line: int = 0
    merging: bool = False  # the waiting key is `<<`
    merges: list[Node] = field(default_factory=list)
    merge_line: int = 0


class _Composer:
    def __init__(self, text: str, file: str, loader_class: type):
        self.text = text
        self.file = file
        self.loader = loader_class(text)
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Node, int, int]] = {}  # anchor -> (node, size, height)
        self.alias_budget = max(MIN_ALIAS_BUDGET, len(text) // 10)
        self.alias_limit = max(MIN_ALIAS_COUNT, len(text) // 8)
        self.alias_nodes = 0
        self.alias_count = 0

    def path(self) -> str:
        """The key path of the node being read now."""
        if not self.stack:
            return ""
        frame = self.stack[-1]
        if frame.is_mapping:
            if frame.key is not None and not frame.merging:
                return _child_path(frame.node.path, frame.key)
            return frame.node.path
        return _child_path(frame.node.path, len(frame.items))

    def error_path(self, error: yaml.MarkedYAMLError) -> str:
        """Where a syntax error is: the collection it names as opening on a line (an unclosed bracket), else the
        node being read."""
        context = error.context or ""
        if error.context_mark is not None and "flow" in context:
            for frame in reversed(self.stack):
                if frame.node.line == error.context_mark.line + 1:
                    return frame.node.path
        if error.context_mark is not None and "quoted scalar" in context:
            top = self.stack[-1] if self.stack else None
            if top is not None and top.is_mapping and top.key is None:
                # the parser had not reached the key yet: take it from the line the quote opens on
                lines = self.text.splitlines()
                opening = lines[error.context_mark.line] if error.context_mark.line < len(lines) else ""
                key = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*:\s", opening)
                if key:
                    return _child_path(top.node.path, key[1])
        return self.path()

    def fail(self, line: int, message: str, path: str | None = None) -> NoReturn:
        Node(None, line, self.path() if path is None else path, self.file).fail(message)

    def compose(self) -> Node:
        root: Node | None = None
        documents = 0
        try:
            while True:
                event = self.loader.get_event()
                kind = type(event)
                if kind is yaml.ScalarEvent:
                    self.scalar(event)
                elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                    self.start(event, kind is yaml.MappingStartEvent)
                elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                    self.end()
                elif kind is yaml.AliasEvent:
                    self.alias(event)
                elif kind is yaml.DocumentStartEvent:
                    documents += 1
                    if documents > 1:
                        self.fail(event.start_mark.line + 1, "a fleet file is one YAML document; this starts another")
                elif kind is yaml.StreamEndEvent:
                    break
                if not self.stack and self.last is not None:
                    root, self.last = self.last, None
        finally:
            self.loader.dispose()
        return root if root is not None else Node({}, 1, "", self.file)

    last: Node | None = None  # a finished top-level node

    def start(self, event: Any, is_mapping: bool) -> None:
        line = event.start_mark.line + 1
        self.check_tag(event, line)
        if len(self.stack) >= MAX_DEPTH:
            self.fail(line, f"nested deeper than {MAX_DEPTH} levels")
        if self.stack and self.stack[-1].is_mapping and self.stack[-1].key is None and not self.stack[-1].merging:
            self.fail(line, "a key must be a name, not a mapping or a list", self.stack[-1].node.path)
        node = Node({} if is_mapping else [], line, self.path(), self.file)
        self.stack.append(_Frame(node, is_mapping, event.anchor))

    def end(self) -> None:
        frame = self.stack.pop()
        node = frame.node
        if frame.is_mapping:
            node.value = self.merged(frame) if frame.merges else frame.entries
        else:
            node.value = frame.items
        if frame.anchor:
            self.anchors[frame.anchor] = (node, frame.size, frame.height)
        self.attach(node, frame.size, frame.height)

    def attach(self, node: Node, size: int, height: int) -> None:
        if not self.stack:
            self.last = node
            return
        frame = self.stack[-1]
        frame.size += size
        frame.height = max(frame.height, height + 1)
        if not frame.is_mapping:
            frame.items.append(node)
        elif frame.merging:
            frame.merges.append(node)
            frame.merging = False
        else:
            assert frame.key is not None
            node.line = frame.key_line
            frame.entries[frame.key] = node
            frame.key = None

    def check_tag(self, event: Any, line: int) -> None:
        if event.tag is not None and event.tag != "!":
            tag = event.tag.replace(_YAML_TAG_PREFIX, "!!", 1) if event.tag.startswith(_YAML_TAG_PREFIX) else event.tag
            self.fail(line, f"YAML tags are not allowed here ({tag}): write the value plainly")

    def scalar(self, event: Any) -> None:
        line = event.start_mark.line + 1
        if event.tag is not None:
            self.check_tag(event, line)
        plain = event.implicit[0] and event.tag is None  # `! 12` is text, as YAML says (the parsers differ on it)
        text = event.value
        frame = self.stack[-1] if self.stack else None
        if frame is not None and frame.is_mapping and frame.key is None and not frame.merging:
            self.key(frame, text, plain, line, event.anchor)
            return
        value = _plain_value(text)[0] if plain else text
        node = Node(value, line, self.path(), self.file, text)
        if event.anchor:
            self.anchors[event.anchor] = (node, 1, 0)
        self.attach(node, 1, 0)

    def key(self, frame: _Frame, text: str, plain: bool, line: int, anchor: str | None) -> None:
        if plain:
            value, tag = _plain_value(text)
            if tag == "merge":
                if frame.merge_line:
                    self.fail(line, f"<< is written twice (first at line {frame.merge_line}): merge several "
                                    "mappings with <<: [*a, *b]", frame.node.path)
                frame.merging, frame.merge_line = True, line
                return
            if tag in ("bool", "null", "int", "float"):
                reading = {"bool": f"the boolean {str(value).lower()}", "null": "null (nothing)"}.get(tag, "a number")
                self.fail(line, f"key {text or '(empty)'!r} reads as {reading} in YAML 1.1: quote it "
                                f"(\"{text}\") if it is a name", frame.node.path)
        if anchor:
            self.anchors[anchor] = (Node(text, line, frame.node.path, self.file, text), 1, 0)
        if text in frame.entries:
            first = frame.entries[text].line
            self.fail(line, f"duplicate key (first at line {first})", _child_path(frame.node.path, text))
        frame.key, frame.key_line = text, line

    def alias(self, event: Any) -> None:
        line = event.start_mark.line + 1
        name = event.anchor
        frame = self.stack[-1] if self.stack else None
        if frame is not None and frame.is_mapping and frame.key is None and not frame.merging:
            self.fail(line, f"an alias (*{name}) cannot be a key", frame.node.path)
        if name not in self.anchors:
            if any(f.anchor == name for f in self.stack):
                self.fail(line, f"alias *{name} is inside the collection it names (a recursive structure)")
            self.fail(line, f"alias *{name} names no anchor (&{name}) written before it")
        target, size, height = self.anchors[name]
        self.alias_count += 1
        if self.alias_count > self.alias_limit:
            self.fail(line, f"more than {self.alias_limit} aliases in one file")
        if self.alias_nodes + size > self.alias_budget:
            self.fail(line, f"alias *{name} expands to {size} nodes, over this file's budget of {self.alias_budget} "
                            "nodes from aliases (refused before expanding it: a \"billion laughs\" file?)")
        if len(self.stack) + height > MAX_DEPTH:
            self.fail(line, f"alias *{name} nests deeper than {MAX_DEPTH} levels")
        self.alias_nodes += size
        self.attach(_copy(target, self.path(), line), size, height)

    def merged(self, frame: _Frame) -> dict[str, Node]:
        sources: list[Node] = []
        for merge in frame.merges:
            candidates = merge.value if isinstance(merge.value, list) else [merge]
            for source in candidates:
                if not isinstance(source.value, dict):
                    Node(None, frame.merge_line, frame.node.path, self.file).fail(
                        f"<< merges a mapping (or a list of mappings) into this one, got {source.kind}")
                sources.append(source)
        result: dict[str, Node] = {}
        for source in sources:
            for key, value in source.value.items():
                if key not in result and key not in frame.entries:
                    result[key] = _copy(value, _child_path(frame.node.path, key), value.line)
        result.update(frame.entries)
        return result


def _copy(node: Node, path: str, line: int) -> Node:
    """A node at another path (what an alias or a merge puts there); the lines stay where the text is."""
    if isinstance(node.value, dict):
        value: Any = {k: _copy(v, _child_path(path, k), v.line) for k, v in node.value.items()}
    elif isinstance(node.value, list):
        value = [_copy(v, _child_path(path, i), v.line) for i, v in enumerate(node.value)]
    else:
        value = node.value
    return Node(value, line, path, node.file, node.text)


# --- errors in the YAML text itself ---------------------------------------------------------------------------------


def _syntax_error(error: yaml.MarkedYAMLError, path: str, file: str) -> SchemaError:
    problem_line = error.problem_mark.line + 1 if error.problem_mark else 0
    context_line = error.context_mark.line + 1 if error.context_mark else problem_line
    context = (error.context or "").removeprefix("while scanning ").removeprefix("while parsing ").removeprefix("a ")
    problem = error.problem or "not valid YAML"
    if any(context.endswith(opener) for opener in _OPENERS) and context_line != problem_line:
        return SchemaError(f"{file}:{context_line}: {path or '(top)'}: not valid YAML: the {context} that opens "
                           f"here is not closed (the parser gave up at line {problem_line}: {problem})")
    also = f" ({error.context} at line {context_line})" if error.context and context_line != problem_line else ""
    return SchemaError(f"{file}:{problem_line}: {path or '(top)'}: not valid YAML: {problem}{also}")


def _path_at_line(text: str, line: int) -> str:
    """The key path of the deepest node written on ``line`` (best effort, for errors found before parsing)."""
    try:
        root = _Composer(text, "", DEFAULT_LOADER).compose()
    except (yaml.YAMLError, SchemaError):
        return ""
    best, stack = "", [root]
    while stack:
        node = stack.pop()
        if node.line == line:
            best = node.path if len(node.path) >= len(best) else best
        if isinstance(node.value, dict):
            stack.extend(node.value.values())
        elif isinstance(node.value, list):
            stack.extend(node.value)
    return best


def parse_yaml(text: str, file: str, *, loader: type | None = None) -> Node:
    """The YAML ``text`` as a Node tree (an empty document is an empty mapping), composed from the parser's events
    by `_Composer`, which applies the module's rules. ``loader`` picks the parser (default: libyaml's when
    installed); every error is a SchemaError naming ``file`` and the line."""
    composer = _Composer(text, file, loader or DEFAULT_LOADER)
    try:
        return composer.compose()
    except yaml.MarkedYAMLError as error:
        if (loader or DEFAULT_LOADER) is not PURE_LOADER:
            return parse_yaml(text, file, loader=PURE_LOADER)  # the same error, in PyYAML's words
        raise _syntax_error(error, composer.error_path(error), file) from None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        character = f"U+{error.character:04X}" if isinstance(error.character, int) else repr(error.character)
        cleaned = text[:error.position] + " " + text[error.position + 1:]
        raise SchemaError(f"{file}:{line}: {_path_at_line(cleaned, line) or '(top)'}: not valid YAML: "
                          f"character {character} is not allowed in YAML") from None
    except yaml.YAMLError as error:
        raise SchemaError(f"{file}:1: (top): not valid YAML: {error}".splitlines()[0]) from None


def decode(data: bytes, file: str) -> str:
    """UTF-8 text, or a one-line error naming the line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        path = _path_at_line(data.decode("utf-8-sig", errors="replace"), line)
        raise SchemaError(f"{file}:{line}: {path or '(top)'}: not UTF-8 text (byte 0x{data[error.start]:02x} "
                          f"at column {column}): save the file as UTF-8") from None


def load_yaml(path: Path, *, loader: type | None = None) -> Node:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a fleet file") from None
    except OSError as error:
        raise InputError(f"{path}: {error.strerror}") from None
    return parse_yaml(decode(data, str(path)), str(path), loader=loader)


# --- typed readers --------------------------------------------------------------------------------------------------

MISSING: Any = object()


def suggestion(key: str, known: Iterator[str] | list[str] | set[str]) -> str:
    """`` (did you mean 'image'?)`` when ``key`` looks like a typo of a known key, else ``""``."""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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

    def missing(self, key: str) -> NoReturn:
        """A required key is not there: a typo of it (``imagee:``) is named as the unknown key it is."""
        unread = [k for k in self.items if k not in self.read and k != key]
        close = difflib.get_close_matches(key, unread, n=1, cutoff=0.75)
        if close:
            self.items[close[0]].fail(f"unknown key (did you mean {key!r}?)")
        self.node.fail(f"missing required key {_child_path(self.node.path, key)!r}")

    def required(self, key: str) -> Node:
        node = self.get(key)
        if node is None or node.value is None:
            self.missing(key)
        return node

    def _typed(self, key: str, default: Any, types: tuple[type, ...], what: str) -> Any:
        node = self.get(key)
        if node is None or node.value is None:
            if default is MISSING:
                self.missing(key)
            return default
        if not isinstance(node.value, types) or (bool not in types and isinstance(node.value, bool)):
            node.fail(f"expected {what}, got {node.kind}")
        return node.value

    def string(self, key: str, default: Any = MISSING) -> Any:
        """Text, as written: ``tag: 1.10`` is ``"1.10"``, ``restart: no`` is ``"no"``."""
        node = self.get(key)
        if node is None or node.value is None:
            if default is MISSING:
                self.missing(key)
            return default
        text = node.as_text()
        if text is None:
            node.fail(f"expected a string, got {node.kind}")
        return text

    def _bounded(self, key: str, value: Any, minimum: float | None, maximum: float | None, positive: bool) -> Any:
        node = self.items.get(key)
        if node is None or value is None or node.value is None:
            return value
        trap = number_trap(node)
        if trap:
            node.fail(trap)
        if isinstance(value, float) and not math.isfinite(value):
            node.fail(f"expected a finite number, got {node.text}")
        if positive and value <= 0:
            node.fail(f"must be more than 0, got {node.text}")
        if minimum is not None and value < minimum:
            node.fail(f"must be {minimum:g} or more, got {node.text}")
        if maximum is not None and value > maximum:
            node.fail(f"must be {maximum:g} or less, got {node.text}")
        return value

    def integer(self, key: str, default: Any = MISSING, *, minimum: float | None = None,
                maximum: float | None = None, positive: bool = False) -> Any:
        value = self._typed(key, default, (int,), "an integer")
        return self._bounded(key, value, minimum, maximum, positive)

    def number(self, key: str, default: Any = MISSING, *, minimum: float | None = None,
               maximum: float | None = None, positive: bool = False) -> Any:
        value = self._typed(key, default, (int, float), "a number")
        return self._bounded(key, value, minimum, maximum, positive)

    def boolean(self, key: str, default: Any = MISSING) -> Any:
        return self._typed(key, default, (bool,), "true or false")

    def strings(self, key: str, default: Any = MISSING) -> Any:
        node = self.get(key)
        if node is None or node.value is None:
            if default is MISSING:
                self.missing(key)
            return default
        if node.is_scalar:
            return [node.as_text()]
        if not isinstance(node.value, list):
            node.fail(f"expected a list of strings, got {node.kind}")
        result = []
        for item in node.value:
            text = item.as_text()
            if text is None:
                item.fail(f"expected a string, got {item.kind}")
            result.append(text)
        return result

    def string_map(self, key: str) -> dict[str, str]:
        """A mapping of names to scalar values (environment, build args, tags), as the text written."""
        node = self.get(key)
        if node is None or node.value is None:
            return {}
        result = {}
        for name, value in Mapping(node).entries():
            text = value.as_text()
            if text is None:
                value.fail(f"expected a string value, got {value.kind}")
            result[name] = text
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
                node.fail("unknown key" + suggestion(key, self.read - set(self.items)))
