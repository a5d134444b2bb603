"""Reading YAML with line numbers, for errors that name the file, line and key.

    node = load_yaml(Path("fleet.yaml"))
    top = Mapping(node)
    name = top.string("name")
    for key, service in top.mapping("services").entries():
        ...
    top.done()          # any key nobody read is an error: "fleet.yaml:7: servcies: unknown key (did you mean ...)"

Every typed section of the fleet file is read through these readers, once, at load time.

The YAML is composed here from the parser's events (libyaml's C parser when installed, else PyYAML's own: the
same events, so the same results and, for bad YAML, the same messages), with these rules. (Two fast paths give the
same tree for the documents they read and leave every other one, and every error, to the event composer: the line
reader (`_LineReader`) for the block mappings, lists, one-line scalars and flow collections fleet files are written
in; libyaml's own composer for any other document without an alias, tag or merge key.)

- **No tags**: a tag of any kind (``!!python/object``, ``!!str``, ``!foo``) on any node is an error.
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

import contextlib
import difflib
import functools
import gc
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
_LIBYAML_LOADER: type | None = getattr(yaml, "CSafeLoader", None)
FAST_LOADER: type = _LIBYAML_LOADER or yaml.SafeLoader

_YAML_TAG_PREFIX = "tag:yaml.org,2002:"
_CONSTRUCTOR = SafeConstructor()
_IMPLICIT_RESOLVERS: dict[str | None, list[tuple[str, re.Pattern[str]]]] = Resolver.yaml_implicit_resolvers
_ANY_START_RESOLVERS = _IMPLICIT_RESOLVERS.get(None, [])
_OPENERS = ("quoted scalar", "flow sequence", "flow mapping", "block scalar")
_DECIMAL_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
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


# The first characters of a plain scalar that YAML 1.1 may read as something other than text (none: any may).
_NOT_TEXT_FIRST: frozenset[str | None] | None = None if _ANY_START_RESOLVERS else frozenset(_IMPLICIT_RESOLVERS)


def _plain_value(text: str) -> tuple[Any, str]:
    """What YAML 1.1 makes of a plain (unquoted, untagged) scalar: (value, tag name)."""
    if _NOT_TEXT_FIRST is not None and text[:1] not in _NOT_TEXT_FIRST:
        return text, "str"  # the common case: a name or a path
    if _DECIMAL_INT.fullmatch(text):  # a decimal is an int (YAML 1.1's floats all have a '.'), as PyYAML reads it
        return int(text), "int"
    return _resolved_value(text)


@functools.lru_cache(maxsize=1 << 16)  # keys and small values repeat in every service of a big file
def _resolved_value(text: str) -> tuple[Any, str]:
    resolvers = _IMPLICIT_RESOLVERS.get(text[:1])
    if resolvers is None and not _ANY_START_RESOLVERS:
        return text, "str"  # the common case: a name or a path
    for tag, pattern in (resolvers or []) + _ANY_START_RESOLVERS:
        if pattern.match(text):
            name = tag.removeprefix(_YAML_TAG_PREFIX)
            if name == "null":
                return None, name
            if name == "bool":
                return _CONSTRUCTOR.bool_values[text.lower()], name
            if name == "int":
                if _DECIMAL_INT.fullmatch(text):  # the common case, as PyYAML reads it (octal, 0x, 1:20 go there)
                    return int(text), name
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
        plain = event.implicit[0]
        text = event.value
        frame = self.stack[-1] if self.stack else None
        if frame is not None and frame.is_mapping and frame.key is None and not frame.merging:
            self.key(frame, text, plain, line, event.anchor)
            return
        value = _plain_value(text)[0] if plain else text
        key = frame.key if frame is not None and frame.is_mapping and not frame.merging else None
        if frame is not None and key is not None and event.anchor is None:
            # the common case, inlined: a value in a mapping
            path = f"{frame.node.path}.{key}" if frame.node.path else key
            frame.entries[key] = Node(value, frame.key_line, path, self.file, text)
            frame.key = None
            frame.size += 1
            return
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


# --- composing with libyaml's own composer: the fast path for plain documents ----------------------------------------

_KEYS_READ_AS_NOT_TEXT = frozenset(("bool", "null", "int", "float", "merge"))
_ANCHOR = re.compile(r"&[0-9A-Za-z_-]")  # what starts an anchor (or looks like one: in a comment, in quotes)

if hasattr(yaml, "CSafeLoader"):

    class _LibyamlNodeLoader(yaml.CSafeLoader):
        """libyaml's composer (C code: no Python per event), with PyYAML's resolver hooks cut down: a node's tag
        is the tag written on it, or for an untagged node its ``implicit`` flags (a scalar's: plain, quoted)."""

        def resolve(self, kind: type, value: Any, implicit: Any) -> Any:
            return implicit

        def descend_resolver(self, current_node: Any, current_index: Any) -> None:
            pass

        def ascend_resolver(self) -> None:
            pass


class _NeedsEventComposer(Exception):
    """The document has something only the event composer reads (and checks): an alias, a tag, a merge key, a
    duplicate key, a key YAML 1.1 reads as not text, a collection as a key, nesting deeper than MAX_DEPTH."""


class _NodeTreeReader:
    """Our Node tree from libyaml's node tree, for a document without aliases, tags or merge keys: the same nodes,
    lines and paths as the event composer gives; anything it would refuse (or that needs its rules) is left to it.
    libyaml's composer makes an alias the very node its anchor names: a node met twice is an alias. Without an
    anchor there is no alias (libyaml refuses an alias to no anchor), so nodes are counted only when `&` is there."""

    def __init__(self, file: str):
        self.file = file
        self.seen: set[int] | None = None  # id() of every libyaml node read, when the text may have anchors

    def read(self, text: str) -> Node | None:
        """The document's Node tree, or None when the event composer must read it."""
        if "&" in text and _ANCHOR.search(text):
            self.seen = set()  # the tree is alive while it is read: an id() is one node's
        loader = _LibyamlNodeLoader(text)
        try:
            root = loader.get_single_node()
        except yaml.YAMLError:
            return None  # the event composer gives the error in its words, at its line
        finally:
            loader.dispose()
        if root is None:
            return Node({}, 1, "", self.file)
        try:
            return self.node(root, "", root.start_mark.line + 1, 1)
        except _NeedsEventComposer:
            return None

    def first_time(self, yaml_node: Any) -> None:
        if self.seen is None:
            return
        if id(yaml_node) in self.seen:  # an alias
            raise _NeedsEventComposer
        self.seen.add(id(yaml_node))

    def node(self, yaml_node: Any, path: str, line: int, depth: int) -> Node:
        """``yaml_node`` as a Node at ``path``; ``line`` is its key's line in a mapping, else its own."""
        kind = type(yaml_node)
        if kind is yaml.ScalarNode:
            return self.scalar(yaml_node, path, line)
        if type(yaml_node.tag) is not bool or depth > MAX_DEPTH:  # a tag written on it; too deep (or recursive)
            raise _NeedsEventComposer
        self.first_time(yaml_node)
        if kind is yaml.SequenceNode:
            return Node(self.items(yaml_node, path, depth), line, path, self.file)
        return Node(self.entries(yaml_node, path, depth), line, path, self.file)

    def scalar(self, yaml_node: Any, path: str, line: int) -> Node:
        implicit = yaml_node.tag
        if type(implicit) is not tuple:  # a tag written on it
            raise _NeedsEventComposer
        self.first_time(yaml_node)
        text = yaml_node.value
        return Node(_plain_value(text)[0] if implicit[0] else text, line, path, self.file, text)

    def items(self, sequence: Any, path: str, depth: int) -> list[Node]:
        items = []
        for index, item in enumerate(sequence.value):
            item_path, line = f"{path}[{index}]", item.start_mark.line + 1
            if type(item) is yaml.ScalarNode:
                items.append(self.scalar(item, item_path, line))
            else:
                items.append(self.node(item, item_path, line, depth + 1))
        return items

    def entries(self, mapping: Any, path: str, depth: int) -> dict[str, Node]:
        prefix = f"{path}." if path else ""
        entries: dict[str, Node] = {}
        for key_node, value_node in mapping.value:
            implicit = key_node.tag
            if type(key_node) is not yaml.ScalarNode or type(implicit) is not tuple:
                raise _NeedsEventComposer
            self.first_time(key_node)
            key = key_node.value
            if (implicit[0] and _plain_value(key)[1] in _KEYS_READ_AS_NOT_TEXT) or key in entries:
                raise _NeedsEventComposer
            line = key_node.start_mark.line + 1
            if type(value_node) is yaml.ScalarNode:
                entries[key] = self.scalar(value_node, prefix + key, line)
            else:
                entries[key] = self.node(value_node, prefix + key, line, depth + 1)
        return entries


# --- the fast path for the YAML fleet files are written in: a line reader ------------------------------------------

# Anything but a line feed and the printable characters YAML allows (a tab, a carriage return, YAML 1.1's other
# line breaks U+0085, U+2028, U+2029, a byte order mark, a control character): the line reader leaves the document.
_NOT_FOR_LINE_READER = re.compile(
    "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
# What it lets through in ASCII, for one bytes.translate (`characters_for_line_reader`).
_ASCII_FOR_LINE_READER = bytes(code for code in range(128) if not _NOT_FOR_LINE_READER.match(chr(code)))
_PLAIN_START = "[^\\s\\-?:,\\[\\]{}#&*!|>'\"%@`]|-[^\\s:,\\[\\]{}#]"  # as YAML starts a plain scalar, cut down
_BLOCK_KEY = re.compile(r"(\w[\w./-]*) *:(?: +(.*))?")  # `name:`, `name: rest` (rest starts with no space)
_DOUBLE_QUOTED = re.compile(r'"([^"\\]*)"')  # no escapes
_SINGLE_QUOTED = re.compile(r"'((?:[^']|'')*)'")
_AFTER_VALUE = re.compile(r"(?: +#.*| *)")  # a comment or nothing after a value
_FLOW_PLAIN = re.compile(f"(?:{_PLAIN_START})[^,\\[\\]{{}}:#?]*(?<! )")  # a plain scalar in [] or {}
_BLOCK_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
# A one-item flow list (`hosts: [web-1]`, `volumes: ["/srv:/data"]`), told in one match: an item with no comma,
# bracket or brace, quoted without escapes or plain, what `_flow` reads it as (anything else is left to `_flow`).
_ONE_ITEM_LIST = re.compile(r"""\[ *(?:"([^"\\,\[\]{}]*)"|'([^',\[\]{}]*)'|(""" + _FLOW_PLAIN.pattern
                            + r""")) *\]""" + _AFTER_VALUE.pattern)
_LINE_READER_DEPTH = 32  # deeper documents (rare; MAX_DEPTH applies) are left to the composers

_NO_VALUE, _SCALAR, _FLOW_LIST, _FLOW_MAPPING = 0, 1, 2, 3  # what follows a key or a dash on its line
_LineShape = tuple[int, bool, "str | None", int, int, Any]  # indent, dash, key, key's column, what follows, its value
_EMPTY_LINE: _LineShape = (-1, False, None, -1, -1, None)  # a blank line or a comment


def characters_for_line_reader(text: str) -> bool:
    """No character of ``text`` is one the line reader leaves to the composers (ASCII text is told by one
    bytes.translate, 5 times faster than the search)."""
    if text.isascii():
        return not text.encode().translate(None, _ASCII_FOR_LINE_READER)
    return _NOT_FOR_LINE_READER.search(text) is None


class _LeaveToComposers(Exception):
    """The line reader met something it does not read (or that is an error): the composers read the document."""


def _quoted(text: str) -> tuple[str, int]:
    """A one-line quoted scalar at the start of ``text`` (without escapes): (its value, where it ends)."""
    match = (_DOUBLE_QUOTED if text[0] == '"' else _SINGLE_QUOTED).match(text)
    if match is None:
        raise _LeaveToComposers  # an escape, a quote that closes on another line, or none
    return (match[1] if text[0] == '"' else match[1].replace("''", "'")), match.end()


def _flow_scalar(piece: str) -> tuple[Any, str]:
    """One item of a one-line flow collection, between its commas: (value, text as written)."""
    text = piece.strip(" ")
    if text[:1] in ("'", '"'):
        value, end = _quoted(text)
        if end != len(text):
            raise _LeaveToComposers
        return value, value
    if not _FLOW_PLAIN.fullmatch(text):
        raise _LeaveToComposers
    return _plain_value(text)[0], text


def _flow(text: str) -> tuple[int, tuple[Any, ...]]:
    """A flow list or mapping of scalars that closes on its line: (what it is, its items as (``[index]``, value, text)
    or its entries as (key, ``.key``, value, text), each first with what it adds to the collection's path). Items are
    split at commas: one that is not one whole quoted or plain scalar (a quote with a comma in it, a nested
    collection, an empty item, a comment) leaves the document to the composers."""
    is_list = text[0] == "["
    if is_list:
        one = _ONE_ITEM_LIST.fullmatch(text)
        if one is not None:
            plain = one[3]
            if plain is None:
                quoted = one[1] if one[2] is None else one[2]
                return _FLOW_LIST, (("[0]", quoted, quoted),)
            return _FLOW_LIST, (("[0]", _plain_value(plain)[0], plain),)
    end = text.find("]" if is_list else "}")
    inner = text[1:end]
    if end < 0 or "[" in inner or "{" in inner or not _AFTER_VALUE.fullmatch(text, end + 1):
        raise _LeaveToComposers
    if not inner.strip(" "):
        return (_FLOW_LIST if is_list else _FLOW_MAPPING), ()
    if is_list:
        return _FLOW_LIST, tuple((f"[{index}]", *_flow_scalar(piece)) for index, piece in enumerate(inner.split(",")))
    entries: list[tuple[str, str, Any, str]] = []
    for piece in inner.split(","):
        key, colon, value = piece.partition(": ")
        key = key.strip(" ")
        if not colon or not _FLOW_PLAIN.fullmatch(key) or _plain_value(key)[1] in _KEYS_READ_AS_NOT_TEXT:
            raise _LeaveToComposers
        entries.append((key, "." + key, *_flow_scalar(value)))
    if len({entry[0] for entry in entries}) != len(entries):
        raise _LeaveToComposers  # a duplicate key
    return _FLOW_MAPPING, tuple(entries)


def _line_shape(line: str) -> _LineShape | None:
    """What one line of a block document says, apart from where it is: _EMPTY_LINE, None for anything the line
    reader does not read, else (indent, dash, key, the key's column, what follows, its value)."""
    content = line.lstrip(" ")
    if not content or content[0] == "#":
        return _EMPTY_LINE
    indent = len(line) - len(content)
    if indent == 0 and (content.startswith(("---", "...")) or content[0] == "%"):
        return None  # a document marker, a directive
    rest = content
    dash = content[0] == "-" and (len(content) == 1 or content[1] == " ")
    if dash:
        rest = content[1:].lstrip(" ")
        if not rest or rest[0] == "#" or (rest[0] == "-" and (len(rest) == 1 or rest[1] == " ")):
            return None  # an empty item, a list in a list
    key_column = len(line) - len(rest)
    key = None
    match = _BLOCK_KEY.fullmatch(rest)
    if match is not None:
        key, rest = match[1], match[2] or ""
        if _plain_value(key)[1] in _KEYS_READ_AS_NOT_TEXT:
            return None
        if not rest or rest[0] == "#":
            return indent, dash, key, key_column, _NO_VALUE, None
    elif not dash:
        return None
    try:
        first = rest[0]
        if first == "[" or first == "{":
            kind, items = _flow(rest)
            return indent, dash, key, key_column, kind, items
        if first == '"' or first == "'":
            value, end = _quoted(rest)
            if not _AFTER_VALUE.fullmatch(rest, end):
                return None
            return indent, dash, key, key_column, _SCALAR, (value, value)
    except _LeaveToComposers:
        return None
    if first in _BLOCK_INDICATORS and not (first == "-" and len(rest) > 1 and rest[1] not in " :,[]{}#"):
        return None  # an anchor, alias, tag, block scalar, ...
    comment = rest.find(" #")
    text = (rest if comment < 0 else rest[:comment]).rstrip(" ")
    if ": " in text or text.endswith(":"):
        return None
    return indent, dash, key, key_column, _SCALAR, (_plain_value(text)[0], text)


class _LineReader:
    """Our Node tree, straight from the text, for the YAML fleet files are written in: a block mapping at the top,
    block mappings of plain keys, block lists, one-line plain and quoted scalars (no escapes) and one-line flow
    collections of scalars, with comments. The same nodes, values, lines and paths as the composers give; a
    document with anything else (an anchor, alias, tag, merge key, block or multi-line scalar, quoted key,
    duplicate key, key YAML 1.1 reads as not text, tab, CR, BOM, document marker, anything not valid) is left to
    them, so every error still comes from them."""

    def __init__(self, file: str):
        self.file = file

    def read(self, text: str) -> Node | None:
        """The document's Node tree, or None when the composers must read it."""
        if not characters_for_line_reader(text):
            return None
        try:
            return self.document(text.split("\n"))
        except _LeaveToComposers:
            return None

    def document(self, lines: list[str]) -> Node:
        file = self.file
        root: Node | None = None
        stack: list[tuple[int, Any, Any, str, int]] = []  # the blocks around the open one
        # The open block: its column, its entries (a mapping) or its items (a list), its path and depth.
        column: int = -1
        entries: dict[str, Node] | None = None
        items: list[Node] | None = None
        parent, depth = "", 0
        pending_key: str | None = None  # a key of the open mapping whose value is on the lines below
        pending_line = 0
        inline_column = -1  # after a value written on its key's (or dash's) line, the next line is not deeper
        shapes: dict[str, _LineShape] = {}  # a big file repeats many of its lines (`retries: 5`, `- web`)
        for number, line in enumerate(lines, 1):
            shape = shapes.get(line)
            if shape is None:
                shape = _line_shape(line)
                if shape is None:
                    raise _LeaveToComposers
                shapes[line] = shape
            if shape is _EMPTY_LINE:
                continue
            indent, dash, key, key_column, kind, value = shape
            if pending_key is not None or indent != column or entries is None or dash:  # not the open mapping's
                if pending_key is not None:                                           # next key: the general case
                    assert entries is not None
                    path = f"{parent}.{pending_key}" if parent else pending_key
                    if indent > column or (dash and indent == column):
                        if depth >= _LINE_READER_DEPTH:
                            raise _LeaveToComposers
                        node = Node([] if dash else {}, pending_line, path, file)
                        entries[pending_key] = node
                        stack.append((column, entries, items, parent, depth))
                        column, parent, depth = indent, path, depth + 1
                        entries, items = (None, node.value) if dash else (node.value, None)
                    else:
                        entries[pending_key] = Node(None, pending_line, path, file, "")
                    pending_key = None
                elif root is None:
                    if dash:
                        raise _LeaveToComposers  # a list at the top: not a fleet file, the composers read it
                    root = Node({}, number, "", file)
                    column, entries, depth = indent, root.value, 1
                elif indent > inline_column:
                    raise _LeaveToComposers  # a multi-line scalar, or not valid
                while column > indent or (column == indent and not dash and items is not None):
                    if not stack:
                        raise _LeaveToComposers
                    column, entries, items, parent, depth = stack.pop()
                if column != indent:
                    raise _LeaveToComposers  # not valid YAML: the composers say why
                if items is not None:
                    if not dash:
                        raise _LeaveToComposers
                    path = f"{parent}[{len(items)}]"
                    if key is None:
                        items.append(Node(value[0], number, path, file, value[1]) if kind == _SCALAR
                                     else self.collection(kind, value, number, path, depth))
                        inline_column = indent
                        continue
                    if depth >= _LINE_READER_DEPTH:
                        raise _LeaveToComposers
                    mapping = Node({}, number, path, file)
                    items.append(mapping)
                    stack.append((column, entries, items, parent, depth))
                    column, entries, items, parent, depth = key_column, mapping.value, None, path, depth + 1
                elif dash or key is None:
                    raise _LeaveToComposers
            assert entries is not None and key is not None
            if key in entries:
                raise _LeaveToComposers  # a duplicate key: the event composer names both lines
            if kind == _NO_VALUE:
                pending_key, pending_line = key, number
                continue
            path = f"{parent}.{key}" if parent else key
            entries[key] = (Node(value[0], number, path, file, value[1]) if kind == _SCALAR
                            else self.collection(kind, value, number, path, depth))
            inline_column = column
        if pending_key is not None:
            assert entries is not None
            path = f"{parent}.{pending_key}" if parent else pending_key
            entries[pending_key] = Node(None, pending_line, path, file, "")
        return root if root is not None else Node({}, 1, "", file)

    def collection(self, kind: int, value: Any, line: int, path: str, depth: int) -> Node:
        """The Node of a flow collection a line ends with (in a block ``depth`` deep)."""
        if depth >= _LINE_READER_DEPTH:
            raise _LeaveToComposers
        file = self.file  # (``path`` is a key's or an item's: never the top's, "")
        if kind == _FLOW_LIST:
            return Node([Node(item, line, path + suffix, file, text) for suffix, item, text in value], line, path, file)
        return Node({key: Node(item, line, path + suffix, file, text) for key, suffix, item, text in value},
                    line, path, file)


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
        root = _Composer(text, "", FAST_LOADER).compose()
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


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a fleet file is read and checked (``with`` or as a decorator):
    the tree and the specs are many small objects that stay alive, and the collector would walk them again and again
    as they grow (a third of a big file's load time). They hold no reference cycles: when it is back on, what is
    alive then is moved to the collector's permanent generation (``gc.freeze``), else its next collection would
    walk the whole tree once more (a tenth of a big file's load); reference counting still frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


def parse_yaml(text: str, file: str, *, loader: type | None = None) -> Node:
    """The YAML ``text`` as a Node tree (an empty document is an empty mapping). ``loader`` picks the parser
    (default: libyaml's when installed); every error is a SchemaError naming ``file`` and the line.

    A document in the YAML fleet files are written in is read line by line (`_LineReader`, unless ``loader`` is the
    pure-Python one); with libyaml, another document without aliases, tags or merge keys is composed by libyaml's
    own composer (`_NodeTreeReader`): the same tree. Any other document, and every error, goes through the event
    composer (`_Composer`), which applies the module's rules."""
    composer = _Composer(text, file, loader or FAST_LOADER)
    try:
        with collector_paused():
            if loader is not PURE_LOADER:
                lines_tree = _LineReader(file).read(text)
                if lines_tree is not None:
                    return lines_tree
            if type(composer.loader) is _LIBYAML_LOADER:
                tree = _NodeTreeReader(file).read(text)
                if tree is not None:
                    return tree
            return composer.compose()
    except yaml.MarkedYAMLError as error:
        if (loader or FAST_LOADER) is not PURE_LOADER:
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


# What the readers below give for a value written plainly, straight from its node (absent: ``None``), for the fast
# paths of sections written in the common shape; None for anything else, which the readers decide (and refuse with
# their errors).


def plain_integer(node: Node | None, default: int | None, *, minimum: float | None = None,
                  maximum: float | None = None, positive: bool = False) -> int | None:
    """``Mapping.integer``'s value: ``default`` for nothing, else a decimal written plainly within the bounds."""
    if node is None:
        return default
    value = node.value
    if type(value) is int:
        if node.text is not None and _DECIMAL_INT.fullmatch(node.text) and (minimum is None or value >= minimum) \
                and (maximum is None or value <= maximum) and (not positive or value > 0):
            return value
        return None
    return default if value is None else None


def plain_texts(node: Node | None) -> list[str] | None:
    """``Mapping.strings(key, [])``: [] for nothing, one string, or a list of strings (each a str scalar)."""
    if node is None:
        return []
    value = node.value
    if type(value) is list:
        texts = [item.value for item in value]
        return texts if all(type(text) is str for text in texts) else None
    if type(value) is str:
        return [value]
    return [] if value is None else None


def plain_text_map(node: Node | None) -> dict[str, str] | None:
    """``Mapping.string_map``: {} for nothing, else a mapping of scalars, each as its text."""
    if node is None:
        return {}
    value = node.value
    if type(value) is not dict:
        return {} if value is None else None
    result = {}
    for key, item in value.items():
        text = item.as_text()
        if text is None:
            return None
        result[key] = text
    return result


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
        node = self.items.get(key)
        if node is not None:  # the common case: a number written plainly (no trap), checked for its bounds only
            value = plain_integer(node, None, minimum=minimum, maximum=maximum, positive=positive)
            if value is not None:
                self.read.add(key)
                return value
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
