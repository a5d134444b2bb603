"""The fast paths that make a big fleet file load in about a second give exactly what the general paths give:
libyaml's composer and the event composer (archfleet.schema), a template value checked and rendered placeholder by
placeholder and as one Jinja template (archfleet.fleet.services, archfleet.services.desired), and placement's
one-pass tables against their definitions (archfleet.placement)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import jinja2
import pytest

from archfleet.errors import InputError
from archfleet.fleet import load_fleet
from archfleet.fleet.services import SIMPLE_PLACEHOLDER, only_placeholders
from archfleet.placement import place, start_order
from archfleet.schema import FAST_LOADER, Node, _Composer, _NodeTreeReader
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
