"""The YAML layer under the fleet file (archfleet.schema): tags, merge keys, aliases, YAML 1.1 traps, syntax errors
where the construct opens, non-UTF-8 bytes, did-you-mean. Every case runs on libyaml's parser and on PyYAML's own,
which must agree exactly."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from archfleet.schema import FAST_LOADER, PURE_LOADER, Mapping, Node, SchemaError, load_yaml, parse_yaml

LOADERS = [pytest.param(FAST_LOADER, id="libyaml"), pytest.param(PURE_LOADER, id="pure")]


def error_of(text: str, loader: type = FAST_LOADER) -> str:
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
    assert FAST_LOADER.__name__ == "CSafeLoader"


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
        assert error_of(text, FAST_LOADER) == error_of(text, PURE_LOADER), text


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
