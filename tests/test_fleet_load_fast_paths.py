"""The fast paths that make a big fleet file load in about a second give exactly what the general paths give:
the line reader, libyaml's composer and the event composer (archfleet.schema), a template value checked and rendered
placeholder by placeholder and as one Jinja template (archfleet.fleet.services, archfleet.services.desired), and
placement's one-pass tables against their definitions (archfleet.placement)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from archfleet.errors import InputError
from archfleet.fleet import load_fleet
from archfleet.fleet.services import SIMPLE_PLACEHOLDER, only_placeholders
from archfleet.placement import place, start_order
from archfleet.schema import FAST_LOADER, Node, SchemaError, _Composer, _LineReader, _NodeTreeReader, parse_yaml
from archfleet.services.desired import RENDER_ERRORS, render_text, text_template
from tests.benchmarks.fleet_load import big_fleet

PROJECT = Path(__file__).resolve().parents[1]
CORPUS = PROJECT / "tests" / "fleetfile" / "corpus"

PLAIN_DOCUMENTS = [
    "",
    "# only a comment\n",
    "---\n",
    "just text\n",
    "- a\n- 'b'\n- [1, 2.5, -3, 0o17, 017, 0x1f, 1_000, 1:20, .inf, ~, null, yes, No, on, '', \"\"]\n",
    "a: 012345670123\nb: '012'\nc: 1.10\nd: 2001-01-01\ne: no\nf:\ng: ~\nh: -0\ni: +5\n",
    "'on': 1\n\"8080\": x\n2001-01-01: d\n=: v\nk: ! 12\n! t: 1\n",
    "a: |\n  x\n  y\nb: >\n  x\n  y\nc: \"\\x41\\u00e9\"\n",
    "top:\n  list:\n  - {a: 1, b: [x, {c: d}]}\n  -\n    - nested\n  flow: {k: v, l: [1]}\n",
    "x: " + "[" * 63 + "]" * 63 + "\n",
    "a: ! {b: 1}\nc: ! [1]\n",
    "a: &unused 1\n# an alias in a comment: *unused\n",  # an anchor no alias uses changes nothing
]

EVENT_COMPOSER_DOCUMENTS = [
    "a: &x 1\nb: *x\n",  # an alias: the event composer bounds what aliases expand to
    "- &a x\n- *a\n",
    "a: &a [*a]\n",  # a recursive structure
    "a: &a x\n*a : 1\n",  # an alias as a key
    "a: !!str 1\n",  # tags
    "a: !local {b: 1}\n",
    "<<: {a: 1}\nb: 2\n",  # a merge key
    "a: 1\na: 2\n",  # a duplicate key
    "on: 1\n",  # a key YAML 1.1 reads as a boolean
    "? [a]\n: 1\n",  # a list as a key
    "x: " + "[" * 65 + "]" * 65 + "\n",  # deeper than MAX_DEPTH
    "a: 1\n---\nb: 2\n",  # two documents
    "a: [1, 2\nb: 3\n",  # not valid YAML
    "a: 1\nb: x\x07\n",  # a character YAML does not allow
]


def dump(node: Node) -> Any:
    """Everything a Node says: its value (with the value's type), line, path, file and the text as written."""
    value: Any = node.value
    if isinstance(value, dict):
        value = {key: dump(child) for key, child in value.items()}
    elif isinstance(value, list):
        value = [dump(child) for child in value]
    else:
        value = (type(value).__name__, value)
    return value, node.line, node.path, node.file, node.text


def shipped_documents() -> dict[str, str]:
    """The example fleet file and the corpus cases (each UTF-8 one: the others fail before any composer)."""
    documents = {}
    for path in [PROJECT / "fleet.yaml", *sorted(CORPUS.glob("*.yaml"))]:
        try:
            documents[path.name] = path.read_text()
        except UnicodeDecodeError:
            continue
    return documents


DOCUMENTS = {**{f"plain-{index}": text for index, text in enumerate(PLAIN_DOCUMENTS)},
             "benchmark-50k": big_fleet(0.05), **shipped_documents()}


@pytest.mark.parametrize("name", DOCUMENTS)
def test_libyaml_composer_gives_the_event_composers_tree(name: str) -> None:
    text = DOCUMENTS[name]
    tree = _NodeTreeReader("f.yaml").read(text)
    if tree is not None:  # None: the event composer reads it (a corpus case with an alias, a tag, a duplicate key)
        assert dump(tree) == dump(_Composer(text, "f.yaml", FAST_LOADER).compose())


def test_libyaml_composer_reads_the_example_and_the_benchmark_file() -> None:
    """The fast path is taken where it matters (else the test above compares nothing)."""
    for text in [(PROJECT / "fleet.yaml").read_text(), big_fleet(0.05), *PLAIN_DOCUMENTS]:
        assert _NodeTreeReader("f.yaml").read(text) is not None, text
    assert sum(_NodeTreeReader("f.yaml").read(text) is not None for text in shipped_documents().values()) > 50


@pytest.mark.parametrize("text", EVENT_COMPOSER_DOCUMENTS)
def test_documents_with_anything_unusual_go_to_the_event_composer(text: str) -> None:
    assert _NodeTreeReader("f.yaml").read(text) is None


# --- the line reader -------------------------------------------------------------------------------------------------

YAML_11_TRAPS = ["0123", "012345670123", "no", "No", "on", "OFF", "y", "n", "yes", "~", "null", "Null", "", "1e3",
                 "1.0e+3", "1_000", "1:20", "-1:20", ".inf", "-.Inf", ".nan", "0x1f", "0o17", "0b101", "-0", "+5",
                 "1.10", "2001-01-01", "2001-12-14t21:59:43.10-05:00", "=", "<<", "true", "False"]

LINE_READER_DOCUMENTS = {
    "traps-plain": "".join(f"k{index}: {trap}\n" for index, trap in enumerate(YAML_11_TRAPS)),
    "traps-quoted": "".join(f"k{index}: '{trap}'\nq{index}: \"{trap}\"\n" for index, trap in enumerate(YAML_11_TRAPS)),
    "traps-in-flow": f"a: [{', '.join(t for t in YAML_11_TRAPS if t and t != '=' and ':' not in t)}]\n",
    "colons-in-flow": f"a: [{', '.join(t for t in YAML_11_TRAPS if ':' in t)}]\n",
    "traps-as-keys": "".join(f"{trap}: 1\n" for trap in YAML_11_TRAPS if trap),
    "comments": "# top\na: 1 # one\n  # indented comment\nb:   # nothing yet\n  c: x#y\n\n\nd: 'q' # c\ne: [1] # c\n",
    "indentless-list": "a:\n- 1\n- x: 2\n  y: [3]\nb: 2\n",
    "nested-lists": "a:\n  - - 1\n  -\n    x: 1\n",
    "compact-mappings": "a:\n  - x: 1\n    y:\n      z: 2\n  - w: {}\n    v: []\n",
    "null-values": "a:\nb:\n  c:\nd: ~\n",
    "indented-top": "  a: 1\n  b:\n    c: 2\n",
    "deeper-than-shallower": "a:\n    b: 1\n  c: 2\n",
    "over-indented": "a: 1\n  b: 2\n",
    "multi-line-plain": "a: one\n  two\nb: 1\n",
    "multi-line-quoted": "a: 'one\n  two'\nb: \"x\n  y\"\n",
    "folded": "a: >\n  x\n  y\n",
    "literal": "a: |-\n  x\n",
    "escapes": 'a: "\\u00e9\\n"\nb: \'it\'\'s\'\n',
    "anchor": "a: &x 1\nb: *x\n",
    "anchor-in-flow": "a: [&x 1, *x]\n",
    "merge": "d: {a: 1}\n<<: {b: 2}\n",
    "tag": "a: !!str 1\n",
    "tab": "a:\t1\n",
    "tab-indent": "a:\n\tb: 1\n",
    "crlf": "a: 1\r\nb: [2]\r\n",
    "bom": "\ufeffa: 1\n",
    "duplicate": "a: 1\nb: 2\na: 3\n",
    "duplicate-in-flow": "a: {x: 1, x: 2}\n",
    "unclosed-bracket": "a: [1, 2\nb: 3\n",
    "unclosed-brace": "a: {x: 1\n",
    "unclosed-quote": "a: \"x\nb: 1\n",
    "unclosed-single": "a: 'x\n",
    "multi-line-flow": "a: [1,\n  2]\n",
    "nested-flow": "a: {x: [1, 2], y: {z: 3}}\n",
    "quoted-key": "\"a\": 1\n'b': 2\n",
    "quoted-key-in-flow": "a: {\"x\": 1}\n",
    "flow-quotes-with-commas": "a: [\"x, y\", 'z]']\nb: {k: \"v}\"}\n",
    "flow-empty-items": "a: [1,, 2]\nb: [1, 2,]\n",
    "flow-spaces": "a: [ x ,y  ,  z z ]\nb: {  k:  v , l: w}\nc: [ ]\nd: {  }\n",
    "flow-colons": "a: [x:y, http://h]\nb: {u: http://h/p}\n",
    "flow-no-space-after-colon": "a: {x:1}\n",
    "document-markers": "---\na: 1\n...\n",
    "directive": "%YAML 1.1\n---\na: 1\n",
    "two-documents": "a: 1\n---\nb: 2\n",
    "plain-with-colon": "a: b: c\n",
    "plain-ending-colon": "a: b:\n",
    "plain-indicators": "a: -x\nb: x-\nc: '-'\nd: ?x\ne: :x\nf: a,b[c]{d}\ng: -\nh: - x\n",
    "after-quote": "a: \"x\" y\n",
    "after-quote-hash": "a: \"x\"#y\n",
    "after-flow": "a: [1] x\n",
    "key-space-colon": "a : 1\nb  :\n  c: 2\n",
    "key-with-colon": "a:b: 1\n",
    "key-odd": "a b: 1\n$x: 2\n",
    "list-at-top": "- a\n- b\n",
    "scalar-at-top": "just text\n",
    "empty-item": "a:\n-\n- 1\n",
    "control-character": "a: x\x07\n",
    "nel": "a: x\x85y\n",
    "line-separator": "a: x\u2028y\n",
    "unicode": "é: ünï 😀\nb: [ü, 'é']\n",
    "deep": "".join(f"{' ' * (2 * level)}k{level}:\n" for level in range(40)) + " " * 80 + "v: 1\n",
    "deep-lists": "a:\n" + "".join(f"{' ' * (2 * level + 2)}- k{level}:\n" for level in range(20)) + " " * 44 + "- 1\n",
}

LINE_DOCUMENTS = {**DOCUMENTS, **LINE_READER_DOCUMENTS}


def composed(text: str) -> Any:
    """What the event composer makes of ``text``: the tree dumped, or its error's message."""
    try:
        return dump(_Composer(text, "f.yaml", FAST_LOADER).compose())
    except (SchemaError, yaml.YAMLError) as error:
        return f"error: {type(error).__name__}"


def check_line_reader(text: str) -> bool:
    """The line reader gives the event composer's tree or leaves the text to it (always, for an error): True when
    it read the text."""
    tree = _LineReader("f.yaml").read(text)
    expected = composed(text)
    if tree is None:
        return False
    assert dump(tree) == expected, text
    return True


@pytest.mark.parametrize("name", LINE_DOCUMENTS)
def test_line_reader_gives_the_event_composers_tree(name: str) -> None:
    check_line_reader(LINE_DOCUMENTS[name])


def test_line_reader_reads_the_fleet_files_it_is_for() -> None:
    """It reads the example, the benchmark file and most of the corpus (else the tests compare nothing); it leaves
    every document with anything it does not read to the composers."""
    for text in [(PROJECT / "fleet.yaml").read_text(), big_fleet(0.05), *(LINE_READER_DOCUMENTS[name] for name in (
            "traps-plain", "traps-quoted", "traps-in-flow", "comments", "indentless-list", "compact-mappings",
            "null-values", "indented-top", "flow-spaces", "unicode", "key-space-colon"))]:
        assert check_line_reader(text), text
    assert sum(check_line_reader(text) for text in shipped_documents().values()) > 50
    for name in ("multi-line-plain", "multi-line-quoted", "folded", "literal", "escapes", "anchor", "anchor-in-flow",
                 "merge", "tag", "tab", "tab-indent", "crlf", "bom", "duplicate", "duplicate-in-flow",
                 "unclosed-bracket", "unclosed-brace", "unclosed-quote", "unclosed-single", "multi-line-flow",
                 "nested-flow", "quoted-key", "document-markers", "directive", "two-documents", "control-character",
                 "nel", "line-separator", "deep", "traps-as-keys", "list-at-top", "scalar-at-top"):
        assert _LineReader("f.yaml").read(LINE_READER_DOCUMENTS[name]) is None, name


def test_parse_yaml_gives_the_same_errors_with_the_line_reader() -> None:
    """Every error comes from the composers: the line reader never reads a document they refuse."""
    errors = 0
    for text in LINE_DOCUMENTS.values():
        expected = composed(text)
        if isinstance(expected, str):
            errors += 1
            assert _LineReader("f.yaml").read(text) is None
            with pytest.raises(SchemaError):
                parse_yaml(text, "f.yaml")
        else:
            assert dump(parse_yaml(text, "f.yaml")) == expected
    assert errors > 20


KEYS = ["a", "b", "c", "image", "hosts", "svc-1", "x.y", "k_2", "é", "2001-01-01", "=", "a b", "0123x"]
ODD_KEYS = ["on", "no", "~", "<<", "0123", "1e3", "a:b", "'q'", '"d"', "-k", "? k", "&a k", "*a"]
SCALARS = [*YAML_11_TRAPS, "text", "two words", "'q'", "'it''s'", '"d"', '"a, b"', "x # c", "x#y", "http://h:80/p",
           "{{ host.name }}", "[1, 2]", "[a, 'b', \"c\"]", "{k: v, l: 'w'}", "[]", "{}", "[ x , y ]", "é😀", "-x"]
ODD_SCALARS = ['"x\\y"', "a: b", "-", "- x", "&a x", "*a", "!t x", "|", ">", "'", '"', "[x", "{k: [1]}", "[a,]",
               "{k}", "x\ty", "@x", "`x", "%x", "? x", ": x", "{k: 1, k: 2}", "[a, [b]]"]


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


def test_line_reader_on_random_documents() -> None:
    """Random block documents (traps, quotes, flows, comments, odd indentation) and random mutations of them: the
    line reader's tree is the event composer's, field by field, or it leaves the document to it."""
    rng = random.Random(20261130)
    read = refused = 0
    for index in range(4000):
        text = "\n".join(random_block(rng, rng.choice([0, 0, 0, 2]), 0)) + rng.choice(["\n", "", "\n\n"])
        if index % 3 == 0:  # a mutation: a character in, out or swapped
            position = rng.randrange(len(text) + 1)
            piece = rng.choice([" ", "\n", ":", "-", "#", "'", '"', "[", "]", "{", "}", ",", "\t", "&", "*", "!",
                                "\r", "|", "", "x", "  "])
            text = text[:position] + piece + text[position + rng.randint(0, 2):]
        read += check_line_reader(text)
        refused += isinstance(composed(text), str)
    assert read > 1000 and refused > 300, (read, refused)


def test_the_quick_character_check_is_the_search() -> None:
    """`characters_for_line_reader` (one bytes.translate for ASCII text) says what the search says, for every
    ASCII character and a few others (YAML 1.1's line breaks, a BOM, text beyond the BMP)."""
    from archfleet.schema import _NOT_FOR_LINE_READER, characters_for_line_reader

    for character in [chr(code) for code in range(128)] + ["\x85", "\u2028", "\u2029", "\ufeff", "é", "😀", "\xa0"]:
        text = f"a: b{character}c\nd: e\n"
        assert characters_for_line_reader(text) == (_NOT_FOR_LINE_READER.search(text) is None), repr(character)


FLOW_ITEM_PIECES = ["a", "web-1", "0", "12", "-", " ", "  ", ":", "/", ".", "_", "#", "'", "''", '"', "\\", ",", "[",
                    "]", "{", "}", "?", "&", "*", "!", "|", "~", "no", "on", "0x1", "1e3", "é", "@", "%", "=", "<<"]


def test_one_item_flow_lists_read_as_the_event_composer_reads_them() -> None:
    """`key: [item]` with random items (plain, quoted, odd): the one-match reading of a one-item list gives the event
    composer's tree, or the line reader leaves the line to it."""
    rng = random.Random(20261204)
    read = 0
    for _ in range(3000):
        item = "".join(rng.choice(FLOW_ITEM_PIECES) for _ in range(rng.randint(0, 5)))
        if rng.random() < 0.4:
            quote = rng.choice(["'", '"'])
            item = quote + item + quote
        before, after = rng.choice(["", " ", "  "]), rng.choice(["", " "])
        comment = rng.choice(["", " # c", "  ", "#c"])
        text = f"hosts: [{before}{item}{after}]{comment}\n"
        read += check_line_reader(text)
    assert read > 800, read


TEMPLATE_PIECES = ["{{", "}}", "{", "}", " ", "host", ".", "name", "not", "if", "in", "true", "none", "0", "-", "+",
                   "{%", "%}", "{#", "#}", "raw", "endraw", "_", "'", "|", "(", ")", "[", "]", "x", "é"]


def test_a_value_of_placeholders_compiles_when_jinja_says_it_does() -> None:
    syntax = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    rng = random.Random(20261129)
    claimed = 0
    for _ in range(30000):
        text = "".join(rng.choice(TEMPLATE_PIECES) for _ in range(rng.randint(1, 9)))
        if only_placeholders(text):
            claimed += 1
            syntax.parse(text)  # raises if the shortcut called a bad template good
    assert claimed > 1000
    assert not only_placeholders("{{ not }}") and not only_placeholders("{{ a }}{")
    assert only_placeholders("{{ host.name }}-7") and only_placeholders("a}}{{ b.c }}")


RENDER_VARIABLES: dict[str, object] = {
    "host": {"name": "amd64-1", "platform": "linux/amd64"}, "a": None, "n": 5, "s": "x}}y",
    "hosts": {"amd64-1": {"address": "10.0.0.1"}}, "lst": [1, 2],
}
RENDER_PIECES = ["{{ host.name }}", "{{host.platform}}", "{{ a }}", "{{ n }}", "{{ s }}", "{{ missing }}",
                 "{{ host.missing }}", "{{ lst }}", "{{ n.real }}", "{{ range }}", "{{ n.__class__ }}", "{{ a.b }}",
                 "{{ lst.x }}", "-", "x", " ", "}}", "}", "%", "é"]


def test_a_value_of_placeholders_renders_as_the_whole_template_does(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(
        'registry: {address: "r:5000"}\ninventory: inventory.py\nservices:\n  web: {image: "r:5000/w:1", hosts: [a]}\n')
    (tmp_path / "inventory.py").write_text("hosts = ['a']\n")
    spec = load_fleet(tmp_path / "fleet.yaml").services["web"]
    rng = random.Random(7)
    checked = 0
    for _ in range(3000):
        text = "".join(rng.choice(RENDER_PIECES) for _ in range(rng.randint(1, 6)))
        if not SIMPLE_PLACEHOLDER.search(text) or not only_placeholders(text):
            continue
        checked += 1
        try:
            expected = text_template(text).render(**RENDER_VARIABLES)
        except RENDER_ERRORS as error:
            with pytest.raises(InputError) as caught:
                render_text(spec, "environment.X", text, RENDER_VARIABLES)
            assert str(caught.value) == f"{spec.node.where}: services.web.environment.X: {error}"
            continue
        assert render_text(spec, "environment.X", text, RENDER_VARIABLES) == expected, text
    assert checked > 1000


def test_placement_tables_are_their_definitions(tmp_path: Path) -> None:
    """by_host: each host's services in start order; service_hosts: each service's hosts, sorted."""
    rng = random.Random(3)
    hosts = [f"h{n}" for n in range(12)]
    groups = {"all": hosts, "even": hosts[::2], "few": hosts[:3]}
    lines = ['registry: {address: "r:5000"}', "inventory: inventory.py", "services:"]
    for index in range(60):
        group = rng.choice(["groups: [even]", "groups: [few]", f"hosts: [{rng.choice(hosts)}, {rng.choice(hosts)}]"])
        lines.append(f"  s{index}: {{image: 'r:5000/s:1', {group}, stop_order: {rng.randint(0, 9)}}}")
    (tmp_path / "fleet.yaml").write_text("\n".join(lines) + "\n")
    (tmp_path / "inventory.py").write_text(f"even = {hosts[::2]!r}\nfew = {hosts[:3]!r}\nhosts = {hosts!r}\n")
    fleet = load_fleet(tmp_path / "fleet.yaml")
    placement = place(fleet.services, groups)

    def targets(spec: Any) -> set[str]:
        return {h for g in spec.groups for h in groups[g]} | set(spec.hosts)

    for host in hosts:
        expected = start_order(s for s in fleet.services.values() if host in targets(s))
        assert placement.by_host[host] == tuple(s.name for s in expected)
    assert placement.service_hosts() == {name: placement.hosts_of(name) for name in fleet.services}
    assert placement.service_hosts() == {name: sorted(targets(s)) for name, s in fleet.services.items()}


INTEGER_TEXTS = ["0", "5", "-5", "+5", "1000", "0123", "00", "1_000", "1:20", "0x1f", "0o17", "1e3", "1.5", "'5'",
                 "true", "no", "~", "", "[1]", "99999999999999999999", "-0", "08"]


def test_an_integer_written_plainly_reads_as_the_general_path_reads_it() -> None:
    """Mapping.integer's shortcut for a plain decimal gives the value (or the error) of the general checks."""
    from archfleet.schema import MISSING, Mapping

    def outcome(action: Any) -> Any:
        try:
            return action()
        except SchemaError as error:
            return f"error: {error}"

    bounds: list[dict[str, Any]] = [{}, {"minimum": 0}, {"minimum": 1, "maximum": 100}, {"positive": True},
                                    {"maximum": -1}]
    for text in INTEGER_TEXTS:
        for limits in bounds:
            def fast(text: str = text, limits: dict[str, Any] = limits) -> Any:
                return Mapping(parse_yaml(f"k: {text}\n", "f.yaml")).integer("k", **limits)

            def general(text: str = text, limits: dict[str, Any] = limits) -> Any:
                section = Mapping(parse_yaml(f"k: {text}\n", "f.yaml"))
                value = section._typed("k", MISSING, (int,), "an integer")
                return section._bounded("k", value, limits.get("minimum"), limits.get("maximum"),
                                        limits.get("positive", False))

            assert outcome(fast) == outcome(general), (text, limits)


ENVIRONMENT_VALUES = ["plain", "{{ host.name }}-1", "{{ host.platform }}", "{{ service.name }}", "{{ missing }}",
                      "{{ hosts[host.name].address }}", "{{ service_hosts[service.name] | length }}", "{{ vars.v }}",
                      "{{ v }}", "{{ host.nope }}", "{% if v %}x{% endif %}", "{{ v | int }}", "",
                      "{% for h in hosts %}{{ h }}{% endfor %}", "{{ hosts.nope.address }}"]
TEMPLATE_TEXTS = ["plain\n", "{{ host.name }} {{ secrets.token }}\n", "{{ undefined_name }}\n",
                  "{{ vars.v }}{{ service_hosts[service.name] | tojson }}\n", "{{ nope | tojson }}\n",
                  "{% for h in hosts %}{{ hosts[h].address }}{% endfor %}\n", "{{ secrets.nope }}\n"]


def all_rendered(fleet: Any) -> str | None:
    """The general path: the whole container desired_container builds, for every placed service on every host,
    in check_renders's order; the first error's message, or None."""
    from archfleet.services.desired import desired_container, fleet_context

    context = fleet_context(fleet)
    try:
        for host in fleet.placement.hosts:
            for spec in fleet.placement.services_on(host):
                desired_container(spec, tag="-", repository="-", digest="sha256:" + "0" * 64, host_name=host,
                                  platform="unknown/unknown", context=context)
    except InputError as error:
        return str(error)
    return None


def test_check_renders_refuses_what_building_every_container_refuses(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """check_renders renders only what can fail (files, `{{ }}` values) for each host: the same first error (or
    none) as building every DesiredContainer, on random fleets of random templates and values."""
    import archfleet.services.desired as desired

    check_renders = desired.check_renders
    monkeypatch.setattr(desired, "check_renders", lambda fleet: None)  # load without the check, then compare
    rng = random.Random(11)
    hosts = [f"h{n}" for n in range(4)]
    (tmp_path / "inventory.py").write_text(f"odd = {hosts[1::2]!r}\nhosts = {hosts!r}\n")
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    outcomes: dict[bool, int] = {True: 0, False: 0}
    for index in range(250):
        lines = ['registry: {address: "r:5000"}', "inventory: inventory.py", "services:"]
        for number in range(rng.randint(1, 5)):
            lines += [f"  s{number}:", "    image: r:5000/s:1",
                      f"    {rng.choice(['groups: [odd]', 'groups: [all]', f'hosts: [{rng.choice(hosts)}]'])}",
                      f"    stop_order: {rng.randint(0, 3)}", f"    vars: {{v: '{rng.choice(['1', 'x', ''])}'}}"]
            values = rng.sample(ENVIRONMENT_VALUES, rng.randint(0, 5))
            if values:
                lines.append("    environment:")
                lines += [f"      E{rng.randint(0, 9)}{k}: {v!r}" for k, v in enumerate(values)]
            if rng.random() < 0.4:
                template = tmp_path / f"t{index}-{number}.j2"
                template.write_text(rng.choice(TEMPLATE_TEXTS))
                lines += ["    files:", f"      - {{template: {template.name}, mount: /etc/t}}",
                          "    secrets:", f"      token: {{file: {secret}, mount: /run/secrets/token}}"]
        (tmp_path / "fleet.yaml").write_text("\n".join(lines) + "\n")
        fleet = load_fleet(tmp_path / "fleet.yaml")
        expected = all_rendered(fleet)
        if expected is None:
            check_renders(fleet)
        else:
            with pytest.raises(InputError) as caught:
                check_renders(fleet)
            assert str(caught.value) == expected
        outcomes[expected is None] += 1
    assert outcomes[True] > 30 and outcomes[False] > 30, outcomes


# --- a service in the common shape ----------------------------------------------------------------------------------

SERVICE_VALUES: dict[str, list[str]] = {  # four usual (and good) values first, then the odd and the wrong
    "image": ["web", "r:5000/s:1", "redis:7", "ghcr.io/acme/web:1.2", "'r:5000/s:2'", "nope", "r:5000/UPPER:1",
              "r:5000/s@sha256:abc", "x:", ":1", "5", "''", "[a]", "{a: 1}", "~", "http://r/s:1", "r:5000/s:1 # c"],
    "groups": ["[a]", "[a, b]", "a", "'a'", "[]", "~", "[1]", "[a, [b]]", "{a: 1}", "[yes]", "5", "['']"],
    "hosts": ["[h1]", "[h1, h2]", "h1", "\"h1\"", "[]", "~", "[0123]", "[[h]]", "{h: 1}", "[no]", "1.5"],
    "network": ["host", "bridge", "'bridge'", "~", "other", "5", "[host]", "true", "''"],
    "restart": ["always", "'no'", "unless-stopped", "on-failure", "no", "never", "true", "~", "[always]"],
    "ports": ["[8080]", "[8080/udp]", "[80:80]", "[9090, '8080/tcp']", "['8080:80']", "['8080:80/tcp', 9090]",
              "[99999]", "[0]", "[true]", "8080", "[]", "~", "[x]", "[{a: 1}]", "['70000:80']", "[1:20]",
              "[8080/sctp]"],
    "environment": ["{A: b}", "{A: 1, B: '{{ host.name }}-1'}", "{}", "{A: no, B: 0123}", "{1A: x}",
                    "{A: '{{ secrets.x }}'}", "{A: '{{ oops'}", "{A: ~}", "{A: [1]}", "[]", "~", "x",
                    "{A: '{% if x %}y{% endif %}'}", "{A: '{{ a.b }}{'}"],
    "volumes": ["['/a:/b']", "['/a:/b:ro']", "'/a:/b'", "[]", "~", "['/a:/b:xx']", "['/a']", "['/a:rel']", "[1]",
                "['/a:/b/../c']", "[[x]]", "{a: b}", "[':/b']"],
    "vars": ["{v: 1}", "{}", "{v: no, w: x}", "~", "{v: [1]}", "x", "[v]"],
    "healthcheck": ["{command: 'true'}", "{command: 'true', interval: 2, retries: 5}",
                    "{command: x, start_period: 0, timeout: 3}", "{command: ''}", "{command: ' '}", "{interval: 2}",
                    "{command: x, interval: 0}", "{command: x, timeout: -1}", "{command: x, retries: 0123}",
                    "{command: x, retries: 1_0}", "{command: x, extra: 1}", "{command: '{{ secrets.t }}'}", "~",
                    "x", "{command: 5}", "{command: x, interval: 2.5}", "{command: x, interval: true}",
                    "{command: x, interval: ~}", "{command: [a]}"],
    "stop_order": ["0", "50", "1000", "7", "1001", "-1", "0123", "~", "x", "1.5", "true", "1_0", "+5"],
    "command": ["[run]", "'a b'"],
    "entrypoint": ["[/bin/sh]"],
    "rollout": ["{canary: 0}", "{}"],
    "files": ["[]"],
    "secrets": ["{}"],
    "imagee": ["x"],
}
COMMON_SERVICE_KEYS = ["image", "groups", "hosts", "network", "restart", "ports", "environment", "volumes", "vars",
                       "healthcheck", "stop_order"]


def random_service(rng: random.Random) -> list[str]:
    """The lines of a random service: the common shape with the usual values, but for one key in two services
    (any of its values), now and then another key or no image."""
    keys = [key for key in COMMON_SERVICE_KEYS if key == "image" or rng.random() < 0.45]
    if not {"groups", "hosts"} & set(keys) and rng.random() < 0.8:
        keys.append(rng.choice(["groups", "hosts"]))
    if rng.random() < 0.1:
        keys.append(rng.choice(["command", "entrypoint", "rollout", "files", "secrets", "imagee"]))
    if rng.random() < 0.05:
        keys.remove("image")
    rng.shuffle(keys)
    odd = rng.choice(keys) if keys and rng.random() < 0.5 else None
    return [f"{key}: {rng.choice(SERVICE_VALUES[key] if key == odd else SERVICE_VALUES[key][:4])}" for key in keys]


def test_a_service_in_the_common_shape_reads_as_the_general_path_reads_it(tmp_path: Path) -> None:
    """The common-shape reader (services._parse_common_service) gives the key-by-key reader's spec, field by field
    and type by type, or leaves the service to it: on random services and random mutations of them it never gives a
    spec for one the general path refuses (nor a different one)."""
    from archfleet.fleet import services
    from archfleet.fleet.rollout import RolloutSpec

    (tmp_path / "fleet.yaml").write_text('registry: {address: "r:5000"}\n')
    fleet = load_fleet(tmp_path / "fleet.yaml")
    fleet.images = {"web": None}  # a declared image (only its name matters here)
    fleet.rollout = RolloutSpec(canary=2, batch_percent=50)
    rng = random.Random(20261203)
    outcomes = {"same spec": 0, "left to the general path": 0, "refused": 0}
    for index in range(6000):
        name = rng.choice(["web", "s1", "a.b-c_d"] if rng.random() < 0.97 else ["Web", "-x", "a b"])
        body = random_service(rng)
        if index % 4 == 0 and body:  # a mutation: a line deleted, doubled, re-indented or cut
            line = rng.randrange(len(body))
            body[line] = rng.choice([
                "", body[line] * 2, "  " + body[line], body[line][:rng.randrange(len(body[line]) + 1)],
                body[line].replace(": ", ":\n" + " " * rng.choice([2, 6]) + "- ", 1)])
        indented = "\n".join("    " + line for line in "\n".join(body).split("\n"))
        try:
            node = parse_yaml(f"services:\n  {name}:\n{indented}\n", "f.yaml").value["services"].value[name]
        except (SchemaError, KeyError, TypeError, AttributeError):
            continue  # not YAML, or not a service: nothing to compare
        try:
            general: Any = services._parse_any_service(name, node, fleet, tmp_path)
        except SchemaError as error:
            general = f"error: {error}"
        fast = services._parse_common_service(name, node, fleet)
        if fast is None:
            outcomes["refused" if isinstance(general, str) else "left to the general path"] += 1
            continue
        assert not isinstance(general, str), (name, body, general)
        assert fast == general and repr(fast) == repr(general), (name, body)
        assert [port.node for port in fast.ports] == [port.node for port in general.ports]
        assert fast.rollout is general.rollout
        outcomes["same spec"] += 1
    assert outcomes["same spec"] > 1400 and outcomes["refused"] > 1000, outcomes
    assert outcomes["left to the general path"] > 100, outcomes


def test_the_benchmark_services_are_in_the_common_shape(tmp_path: Path) -> None:
    """The fast path is what the benchmark times (else the test above proves a path nothing takes)."""
    from archfleet.fleet import services

    (tmp_path / "fleet.yaml").write_text(big_fleet(0.05))
    (tmp_path / "inventory.py").write_text(f"hosts = {[f'host-{n}' for n in range(50)]!r}\n")
    fleet = load_fleet(tmp_path / "fleet.yaml")
    nodes = parse_yaml(big_fleet(0.05), "f.yaml").value["services"].value
    assert len(nodes) > 100
    assert all(services._parse_common_service(name, node, fleet) is not None for name, node in nodes.items())


REFERENCE_PIECES = ["registry", ".", "example", "com", ":", "5000", "/", "team", "svc", "-", "--", "_", "__", "1",
                    "0", "A", "Web", "localhost", "@", "sha256", "x" * 70, "é", "..", "//", "[::1]", ":latest", "v1.2"]


def test_a_plain_reference_is_one_docker_reads() -> None:
    """services.PLAIN_REFERENCE (one match instead of references.parse, for a new image in each service) only ever
    claims references that parse accepts, on random texts from the pieces references are made of."""
    from archfleet.fleet.services import PLAIN_REFERENCE, PLAIN_REFERENCE_LENGTH
    from archfleet.references import parse as parse_reference

    rng = random.Random(20261204)
    claimed = 0
    for _ in range(100000):
        text = "".join(rng.choice(REFERENCE_PIECES) for _ in range(rng.randint(1, 12)))
        if rng.random() < 0.5:
            text += ":" + rng.choice(["1", "1.0", "latest", "v_2-x", "", "a" * 130, "-x", ".x", "x/y"])
        if len(text) <= PLAIN_REFERENCE_LENGTH and PLAIN_REFERENCE.fullmatch(text):
            claimed += 1
            parse_reference(text)  # raises if the match called a bad reference good
    assert claimed > 1500, claimed
    for text in ["registry.example.com:5000/team/svc-1:1.0", "redis:7", "r:5000/s:1", "ghcr.io/acme/web:1.2",
                 "localhost/a__b:x", "a-b.c/d.e/f_g:1"]:
        assert PLAIN_REFERENCE.fullmatch(text), text


SCALAR_PIECES = ["0", "1", "7", "9", "12", "08", "0", "3", "-", "+", ".", "_", ":", "e", "E", "x", "o", "b", "a", "f",
                 "e+1", "2.5", ".5", "inf", "nan", "Inf",
                 "yes", "No", "on", "OFF", "y", "n", "~", "null", "true", "False", "<<", "=", "2001-01-01", "T", " ",
                 "é", "r", "web"]


def test_plain_scalars_read_as_pyyaml_reads_them() -> None:
    """schema._plain_value (every composer's, and the line reader's, reading of a plain scalar, with its shortcuts for
    text and decimals) gives PyYAML's own resolver's tag and constructor's value (timestamps, `<<` and `=` as text),
    on random scalars made of the pieces YAML 1.1's implicit types are made of."""
    import math

    from yaml.constructor import SafeConstructor
    from yaml.nodes import ScalarNode

    from archfleet.schema import _plain_value

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
