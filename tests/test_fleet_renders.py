"""Rendering and placing at load time (archfleet.services.desired.check_renders, archfleet.placement): the load step's
checks refuse what a sync would, a value of `{{ name.attribute }}` placeholders compiles and renders as Jinja does,
placement's tables are their definitions, and the benchmark's fleet loads as the benchmark says."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import jinja2
import pytest

from archfleet.errors import InputError
from archfleet.fleet import Fleet, load_fleet
from archfleet.fleet.services import SIMPLE_PLACEHOLDER, only_placeholders
from archfleet.placement import place, start_order
from archfleet.services.desired import RENDER_ERRORS, render_text, text_template
from tests.benchmarks.fleet_load import write_fleet

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



ENVIRONMENT_VALUES = ["plain", "{{ host.name }}-1", "{{ host.platform }}", "{{ service.name }}", "{{ missing }}",
                      "{{ hosts[host.name].address }}", "{{ service_hosts[service.name] | length }}", "{{ vars.v }}",
                      "{{ v }}", "{{ host.nope }}", "{% if v %}x{% endif %}", "{{ v | int }}", "",
                      "{% for h in hosts %}{{ h }}{% endfor %}", "{{ hosts.nope.address }}"]
TEMPLATE_TEXTS = ["plain\n", "{{ host.name }} {{ secrets.token }}\n", "{{ undefined_name }}\n",
                  "{{ vars.v }}{{ service_hosts[service.name] | tojson }}\n", "{{ nope | tojson }}\n",
                  "{% for h in hosts %}{{ hosts[h].address }}{% endfor %}\n", "{{ secrets.nope }}\n"]


def all_rendered(fleet: Fleet) -> str | None:
    """The general path: the whole container desired_container builds, for every placed service on every host,
    in check_renders's order; the first error's message, or None."""
    from archfleet.services.desired import desired_container, fleet_context

    context, placement = fleet_context(fleet), fleet.placement
    assert placement is not None
    try:
        for host in placement.hosts:
            for spec in placement.services_on(host):
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


def test_the_benchmark_fleet_loads_as_the_benchmark_describes_it(tmp_path: Path) -> None:
    """tests/benchmarks/fleet_load.py times what it says: 500 hosts, 50 services, one in five on every host, one in
    five with a rendered file and a secret, the others on a zone of 50 hosts (7 000 services placed on hosts)."""
    fleet = load_fleet(write_fleet(tmp_path, services=50, hosts=500))
    assert fleet.placement is not None and fleet.hosts is not None
    assert len(fleet.services) == 50 and len(list(fleet.hosts)) == 500
    assert sum(len(fleet.placement.hosts_of(name)) for name in fleet.services) == 10 * 500 + 40 * 50
    assert sum(bool(spec.files) and bool(spec.secrets) for spec in fleet.services.values()) == 10
