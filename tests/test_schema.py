"""The YAML layer under the fleet file (archfleet.schema): tags, merge keys, aliases, YAML 1.1 traps, syntax errors
where the construct opens, non-UTF-8 bytes, did-you-mean. Every case runs on libyaml's parser and on PyYAML's own,
which must agree exactly (on random documents too); plain scalars read as PyYAML's resolver reads them."""

from __future__ import annotations

import itertools
import math
import random
import time
from pathlib import Path

import pytest
import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode

from archfleet.schema import (
    DEFAULT_LOADER,
    PURE_LOADER,
    Mapping,
    Node,
    SchemaError,
    _plain_value,
    load_yaml,
    parse_yaml,
)

LOADERS = [pytest.param(DEFAULT_LOADER, id="libyaml"), pytest.param(PURE_LOADER, id="pure")]


def error_of(text: str, loader: type = DEFAULT_LOADER) -> str:
    with pytest.raises(SchemaError) as caught:
        parse_yaml(text, "f.yaml", loader=loader)
    message = str(caught.value)
    assert "\n" not in message
    return message


def plain(node: Node) -> object:
    """The tree as Python values (what the file says, after merges and aliases)."""
    if isinstance(node.value, dict):
        return {k: plain(v) for k, v in node.value.items()}
    if isinstance(node.value, list):
        return [plain(v) for v in node.value]
    return node.value


def test_the_libyaml_parser_is_in_use() -> None:
    assert DEFAULT_LOADER.__name__ == "CSafeLoader"


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(("text", "expected"), [
    ("a: !!python/object/apply:os.system [id]\n", "f.yaml:1: a: YAML tags are not allowed here (!!python/object/apply"),
    ("a: !!python/tuple [1, 2]\n", "f.yaml:1: a: YAML tags are not allowed here (!!python/tuple)"),
    ("a:\n  b: !!python/object:x {c: 1}\n", "f.yaml:2: a.b: YAML tags are not allowed here (!!python/object:x)"),
    ("a: !!str 0123\n", "f.yaml:1: a: YAML tags are not allowed here (!!str)"),
    ("a: !!binary aGVsbG8=\n", "f.yaml:1: a: YAML tags are not allowed here (!!binary)"),
    ("a: [x, !local y]\n", "f.yaml:1: a[1]: YAML tags are not allowed here (!local)"),
    ("a: !!map {b: 1}\n", "f.yaml:1: a: YAML tags are not allowed here (!!map)"),
])
def test_tags_of_any_kind_on_any_node_are_refused(loader: type, text: str, expected: str) -> None:
    assert expected in error_of(text, loader)


@pytest.mark.parametrize("loader", LOADERS)
def test_the_non_specific_tag_makes_a_scalar_text(loader: type) -> None:
    root = parse_yaml("a: ! 12\nb: !\nc: ! no\n! on: 1\nd: ! {e: 1}\n", "f.yaml", loader=loader)
    assert plain(root) == {"a": "12", "b": "", "c": "no", "on": 1, "d": {"e": 1}}


@pytest.mark.parametrize("loader", LOADERS)
def test_merge_keys_explicit_keys_override_and_earlier_merges_win(loader: type) -> None:
    text = """\
defaults: &defaults {image: web, restart: always, ports: [80]}
extra: &extra {restart: "no", network: bridge}
services:
  web:
    <<: [*defaults, *extra]
    restart: on-failure
"""
    root = parse_yaml(text, "f.yaml", loader=loader)
    web = root.value["services"].value["web"]
    assert plain(web) == {"image": "web", "restart": "on-failure", "ports": [80], "network": "bridge"}
    assert web.value["image"].path == "services.web.image" and web.value["image"].line == 1
    assert web.value["ports"].value[0].path == "services.web.ports[0]"
    assert web.value["restart"].line == 6


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(("text", "expected"), [
    ("a:\n  b: 1\n  b: 2\n", "f.yaml:3: a.b: duplicate key (first at line 2)"),
    ("d: &d {x: 1}\na:\n  <<: *d\n  y: 1\n  y: 2\n", "f.yaml:5: a.y: duplicate key (first at line 4)"),
    ("d: &d {x: 1}\na:\n  <<: *d\n  <<: *d\n", "f.yaml:4: a: << is written twice (first at line 3)"),
    ("d: &d [1]\na:\n  <<: *d\n", "f.yaml:3: a: << merges a mapping (or a list of mappings) into this one, got"),
])
def test_duplicates_and_bad_merges_are_errors(loader: type, text: str, expected: str) -> None:
    assert expected in error_of(text, loader)


def billion_laughs(levels: int = 9) -> str:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for previous, name in itertools.pairwise("abcdefghijklmnop"[:levels + 1]):
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("loader", LOADERS)
def test_an_alias_bomb_is_refused_fast_at_the_alias_over_the_budget(loader: type) -> None:
    started = time.monotonic()
    message = error_of(billion_laughs(), loader)
    assert "f.yaml:6: f[0]: alias *e expands to 66430 nodes, over this file's budget of 100000" in message
    assert time.monotonic() - started < 20  # it was > 20 s and 2 GB before; typically well under a second


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(("text", "expected"), [
    ("a: &a [*a]\n", "f.yaml:1: a[0]: alias *a is inside the collection it names"),
    ("a: *nope\n", "f.yaml:1: a: alias *nope names no anchor"),
    ("x: " + "[" * 100 + "]" * 100 + "\n", "nested deeper than 64 levels"),
    ("a: 1\n---\nb: 2\n", "f.yaml:2: (top): a fleet file is one YAML document"),
])
def test_aliases_and_nesting_are_bounded(loader: type, text: str, expected: str) -> None:
    assert expected in error_of(text, loader)


def test_many_small_aliases_in_a_big_file_are_fine() -> None:
    text = "d: &d {a: 1, b: 2}\n" + "".join(f"s{i}: {{<<: *d, c: {i}}}\n" for i in range(20000))
    root = parse_yaml(text, "f.yaml")
    assert plain(root.value["s19999"]) == {"a": 1, "b": 2, "c": 19999}


@pytest.mark.parametrize("loader", LOADERS)
def test_text_stays_as_written_where_the_schema_wants_text(loader: type) -> None:
    text = "owner: 012345670123\nid: 012345678901\nrestart: no\ntag: 1.10\nport: 8080:80\nmode: 0400\nflag: on\n"
    top = Mapping(parse_yaml(text, "f.yaml", loader=loader))
    assert top.items["owner"].value == 0o12345670123  # what YAML 1.1 says ...
    assert [top.string(k) for k in ("owner", "id", "restart", "tag", "port", "mode", "flag")] == \
        ["012345670123", "012345678901", "no", "1.10", "8080:80", "0400", "on"]  # ... and what the schema reads
    assert top.boolean("flag") is True


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("text", ["0b_", "0x_", "-0b__", "+0x_"])
def test_a_number_pattern_without_digits_is_text_not_a_traceback(loader: type, text: str) -> None:
    top = Mapping(parse_yaml(f"tag: {text}\nn: {text}\nlist: [{text}]\n", "f.yaml", loader=loader))
    assert top.string("tag") == text  # PyYAML raises ValueError here; YAML 1.2 reads it as text
    assert top.items["list"].value[0].value == text
    with pytest.raises(SchemaError) as caught:
        top.number("n", positive=True)
    assert str(caught.value).startswith("f.yaml:2: n: ")


@pytest.mark.parametrize(("text", "expected"), [
    ("n: 010\n", "f.yaml:1: n: 010 has a leading zero, which YAML 1.1 reads as the octal number 8"),
    ("n: 1:30\n", "f.yaml:1: n: 1:30 is the base-60 number 90 in YAML 1.1"),
    ("n: 1_000\n", "f.yaml:1: n: 1_000: write the number without '_'"),
    ("n: -3\n", "f.yaml:1: n: must be more than 0, got -3"),
    ("n: .inf\n", "f.yaml:1: n: expected a finite number"),
    ("n: yes\n", "f.yaml:1: n: expected a number, got bool True"),
])
def test_numbers_refuse_yaml_11_traps_and_out_of_range_values(text: str, expected: str) -> None:
    top = Mapping(parse_yaml(text, "f.yaml"))
    with pytest.raises(SchemaError) as caught:
        top.number("n", positive=True)
    assert expected in str(caught.value)


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(("key", "reading"), [("on", "the boolean true"), ("no", "the boolean false"),
                                              ("~", "null"), ("null", "null"), ("8080", "a number")])
def test_keys_that_yaml_11_reads_as_not_text_are_refused(loader: type, key: str, reading: str) -> None:
    message = error_of(f"jobs:\n  {key}: 1\n", loader)
    assert f"f.yaml:2: jobs: key '{key}' reads as {reading}" in message and f'quote it ("{key}")' in message
    assert plain(parse_yaml(f'jobs:\n  "{key}": 1\n', "f.yaml", loader=loader)) == {"jobs": {key: 1}}


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(("text", "expected"), [
    ("a: 1\nb:\n  c: 'foo\n  d: 2\n",
     "f.yaml:3: b.c: not valid YAML: the quoted scalar that opens here is not closed (the parser gave up at line 5"),
    ("a: 1\nb:\n  c: [x, y\n  d: 2\ne: 3\n",
     "f.yaml:3: b.c: not valid YAML: the flow sequence that opens here is not closed (the parser gave up at line 4"),
    ("a: 1\nb: {c: 1,\n  d: 2\n\ne: [3]\n",
     "f.yaml:2: b: not valid YAML: the flow mapping that opens here is not closed (the parser gave up at line 5"),
    ("a:\n  b: 1\n c: 2\n", "f.yaml:3: (top): not valid YAML: expected <block end>, but found"),
])
def test_syntax_errors_name_the_line_where_the_construct_opens(loader: type, text: str, expected: str) -> None:
    assert expected in error_of(text, loader)


def test_both_parsers_give_identical_errors() -> None:
    for text in ("a: [1, 2\nb: 3\n", "a: 'x\n", "a:\n\tb: 1\n", "a: b: c\n", "a: {b\n", "- a\nb: 1\n"):
        assert error_of(text, DEFAULT_LOADER) == error_of(text, PURE_LOADER), text


def test_bytes_that_are_not_utf8_are_one_line_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_bytes(b"a: 1\nb:\n  c: ok\n  d: caf\xe9\n")
    with pytest.raises(SchemaError) as caught:
        load_yaml(path)
    assert str(caught.value) == f"{path}:4: b.d: not UTF-8 text (byte 0xe9 at column 9): save the file as UTF-8"


def test_characters_yaml_does_not_allow_are_one_line_with_their_line() -> None:
    assert "f.yaml:2: b: not valid YAML: character U+0007 is not allowed" in error_of("a: 1\nb: x\x07\n")


def test_unknown_keys_suggest_the_key_the_section_reads() -> None:
    top = Mapping(parse_yaml("imagee: web\nportz: [1]\n", "f.yaml"))
    with pytest.raises(SchemaError, match=r"f.yaml:1: imagee: unknown key \(did you mean 'image'\?\)"):
        top.string("image")  # a typo of a required key is named as the typo, not as "missing"
    top = Mapping(parse_yaml("image: web\nportz: [1]\ncolour: red\n", "f.yaml"))
    top.string("image")
    top.sequence("ports")
    with pytest.raises(SchemaError, match=r"f.yaml:2: portz: unknown key \(did you mean 'ports'\?\)$"):
        top.done()
    top = Mapping(parse_yaml("colour: red\n", "f.yaml"))
    top.sequence("ports")
    with pytest.raises(SchemaError, match=r"f.yaml:1: colour: unknown key$"):
        top.done()


def test_a_missing_required_key_without_a_typo_is_missing() -> None:
    top = Mapping(parse_yaml("groups: [a]\n", "f.yaml"))
    with pytest.raises(SchemaError, match=r"f.yaml:1: \(top\): missing required key 'image'"):
        top.string("image")


def test_an_empty_file_is_an_empty_mapping() -> None:
    assert parse_yaml("", "f.yaml").value == {}
    assert parse_yaml("# only a comment\n", "f.yaml").value == {}



YAML_11_TRAPS = ["0123", "012345670123", "no", "No", "on", "OFF", "y", "n", "yes", "~", "null", "Null", "", "1e3",
                 "1.0e+3", "1_000", "1:20", "-1:20", ".inf", "-.Inf", ".nan", "0x1f", "0o17", "0b101", "-0", "+5",
                 "1.10", "2001-01-01", "2001-12-14t21:59:43.10-05:00", "=", "<<", "true", "False"]

KEYS = ["a", "b", "c", "image", "hosts", "svc-1", "x.y", "k_2", "é", "2001-01-01", "=", "a b", "0123x"]
ODD_KEYS = ["on", "no", "~", "<<", "0123", "1e3", "a:b", "'q'", '"d"', "-k", "? k", "&a k", "*a"]
SCALARS = [*YAML_11_TRAPS, "text", "two words", "'q'", "'it''s'", '"d"', '"a, b"', "x # c", "x#y", "http://h:80/p",
           "{{ host.name }}", "[1, 2]", "[a, 'b', \"c\"]", "{k: v, l: 'w'}", "[]", "{}", "[ x , y ]", "é😀", "-x"]
ODD_SCALARS = ['"x\\y"', "a: b", "-", "- x", "&a x", "*a", "!t x", "|", ">", "'", '"', "[x", "{k: [1]}", "[a,]",
               "{k}", "@x", "`x", "%x", "? x", ": x", "{k: 1, k: 2}", "[a, [b]]"]


def choose(rng: random.Random, usual: list[str], odd: list[str]) -> str:
    return rng.choice(odd if rng.random() < 0.015 else usual)


def random_block(rng: random.Random, indent: int, depth: int) -> list[str]:
    """Lines of a random block mapping or list at ``indent`` (mostly valid YAML, with the odd trap)."""
    lines: list[str] = []
    is_list = depth > 0 and rng.random() < 0.3
    keys = rng.sample(KEYS, 4)
    for key in keys[:rng.randint(1, 4)]:
        pad = " " * indent
        if rng.random() < 0.1:
            lines.append(pad + rng.choice(["# comment", "", "   # deeper comment", "  "]))
        head = pad + "- " if is_list else pad + choose(rng, [key], ODD_KEYS + keys) + rng.choice([":", ":", ":", " :"])
        if depth < 4 and rng.random() < 0.35:
            if is_list and rng.random() < 0.5:  # a compact mapping
                inner = random_block(rng, indent + 2, depth + 1)
                first = next((n for n, line in enumerate(inner) if line.strip() and not line.strip().startswith("#")
                              and not line.lstrip().startswith("- ")), None)
                if first is not None:
                    inner[first] = head + inner[first].lstrip(" ")
                    lines.extend(inner[:first] + inner[first:])
                    continue
            step = rng.choice([2, 2, 4, 1, 0]) if not is_list else rng.choice([2, 3])
            lines.append(head.rstrip(" ") + rng.choice(["", "", " # c"]))
            lines.extend(random_block(rng, indent + step, depth + 1))
        else:
            lines.append(head + ("" if head.endswith("- ") else " ") + choose(rng, SCALARS, ODD_SCALARS)
                         + rng.choice(["", "", " # c", "  "]))
    return lines


def dump(node: Node) -> object:
    """Everything a Node says: its value (with the value's type), line, path, file and the text as written."""
    value: object = node.value
    if isinstance(node.value, dict):
        value = {key: dump(child) for key, child in node.value.items()}
    elif isinstance(node.value, list):
        value = [dump(child) for child in node.value]
    else:
        value = (type(node.value).__name__, repr(node.value))  # (repr: a NaN equals no NaN)
    return value, node.line, node.path, node.file, node.text


def composed(text: str, loader: type) -> object:
    """The tree ``text`` composes to with ``loader``'s events, dumped; or its error's message."""
    try:
        return dump(parse_yaml(text, "f.yaml", loader=loader))
    except SchemaError as error:
        return f"error: {error}"


def test_both_parsers_compose_the_same_tree_or_the_same_error_on_random_documents() -> None:
    """Random block documents (YAML 1.1's traps, quotes, flows, comments, odd indentation, the odd anchor, alias or
    tag) and random mutations of them: libyaml's events and PyYAML's compose to the same tree, node by node (value,
    type, line, path, text), or to the same one-line error. Where the parsers themselves disagree on what is YAML
    (a tab in a plain scalar, which YAML and libyaml allow and PyYAML's scanner refuses, is left out; `|#`: 1 in
    1500 here), the composer has nothing to compare."""
    rng = random.Random(20261130)
    trees = errors = 0
    disagreements: list[str] = []
    for index in range(1500):
        text = "\n".join(random_block(rng, rng.choice([0, 0, 0, 2]), 0)) + rng.choice(["\n", "", "\n\n"])
        if index % 3 == 0:  # a mutation: a character in, out or swapped
            position = rng.randrange(len(text) + 1)
            piece = rng.choice([" ", "\n", ":", "-", "#", "'", '"', "[", "]", "{", "}", ",", "&", "*", "!", "\r",
                                "|", "", "x", "  "])
            text = text[:position] + piece + text[position + rng.randint(0, 2):]
        with_libyaml, with_pure = composed(text, DEFAULT_LOADER), composed(text, PURE_LOADER)
        if isinstance(with_libyaml, str) != isinstance(with_pure, str):
            disagreements.append(text)  # libyaml accepts what PyYAML's scanner refuses (`|#`), or the other way
            continue
        assert with_libyaml == with_pure, text
        errors += isinstance(with_libyaml, str)
        trees += not isinstance(with_libyaml, str)
    assert trees > 700 and errors > 150, (trees, errors)
    assert len(disagreements) < 15, disagreements


SCALAR_PIECES = ["0", "1", "7", "9", "12", "08", "0", "3", "-", "+", ".", "_", ":", "e", "E", "x", "o", "b", "a", "f",
                 "e+1", "2.5", ".5", "inf", "nan", "Inf",
                 "yes", "No", "on", "OFF", "y", "n", "~", "null", "true", "False", "<<", "=", "2001-01-01", "T", " ",
                 "é", "r", "web"]


def test_plain_scalars_read_as_pyyaml_reads_them() -> None:
    """schema._plain_value (the composer's reading of a plain scalar) gives PyYAML's own resolver's tag and
    constructor's value (timestamps, `<<` and `=` as text), on random scalars made of the pieces YAML 1.1's implicit
    types are made of."""
    loader = yaml.SafeLoader("")
    constructor = SafeConstructor()
    rng = random.Random(20261205)
    tags: dict[str, int] = {}
    for index in range(30000):
        text = "".join(rng.choice(SCALAR_PIECES) for _ in range(rng.randint(1, 5))) if index else ""
        tag = loader.resolve(ScalarNode, text, (True, False))
        value, name = _plain_value(text)
        if name == "str" and tag.endswith(":int"):  # `0b_`, `0x_`: PyYAML's int constructor raises; archfleet: text
            with pytest.raises(ValueError):
                constructor.construct_object(ScalarNode(tag, text))
            assert value == text
            continue
        assert name == tag.removeprefix("tag:yaml.org,2002:"), text
        tags[name] = tags.get(name, 0) + 1
        if name in ("null", "bool", "int", "float"):
            expected = constructor.construct_object(ScalarNode(tag, text))
            assert type(value) is type(expected), text
            assert value == expected or (math.isnan(value) and math.isnan(expected)), text
        else:
            assert value == text, text
    assert min(tags[name] for name in ("str", "int", "float", "bool", "null", "timestamp")) > 100, tags
