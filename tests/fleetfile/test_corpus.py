"""The malformed fleet-file corpus: every file in tests/fleetfile/corpus/ has one defect, named on its first line
(``# expect: LINE key.path text``). Each goes through `archfleet sync --dry`, `archfleet images build --dry` and
`archfleet spot prices`, and each run must exit 2 with one line on stderr naming FILE:LINE: key.path, no
traceback, and no connection to anything: the registry, the inventory's hosts, the Docker host and the AWS endpoint
all point at a loopback listener that records connections.

Adding a case is adding a file. The files use ``support/`` (inventory, templates, secret files) and
``@LISTENER@`` for the registry address.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from archfleet.errors import InputError
from archfleet.fleet import load_fleet
from tests.fleetfile.support import (
    CORPUS,
    CliResult,
    ConnectionRecorder,
    Expectation,
    cli_environment,
    copy_corpus,
    run_console_script,
    run_forked,
)

COMMANDS = (["sync", "--dry"], ["images", "build", "--dry"], ["spot", "prices"])
CASES = sorted(p.name for p in CORPUS.glob("*.yaml") if p.read_bytes().startswith(b"# expect: "))
VALID = sorted(p.name for p in CORPUS.glob("*.yaml") if p.read_bytes().startswith(b"# valid: "))
SECTIONS = ("yaml", "registry", "images", "services", "rollout", "timeouts", "spot", "laptop", "ssh", "disk")


class CorpusRun:
    def __init__(self, folder: Path, listener: ConnectionRecorder, results: dict[tuple[str, str], CliResult],
                 env: dict[str, str]):
        self.folder = folder
        self.listener = listener
        self.results = results
        self.env = env


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusRun]:
    base = tmp_path_factory.mktemp("fleetfile")
    listener = ConnectionRecorder(base / "listener")
    folder = copy_corpus(base, listener)
    env = cli_environment(base / "home", listener)
    runs = [(name, " ".join(command), [*command, "-f", str(folder / name)]) for name in CASES for command in COMMANDS]
    results = run_forked([argv for _, _, argv in runs], env, base / "runs")
    yield CorpusRun(folder, listener, {(name, label): result for (name, label, _), result in zip(runs, results,
                                                                                               strict=True)}, env)
    listener.close()


def test_the_corpus_covers_every_section() -> None:
    assert len(CASES) >= 60
    for section in SECTIONS:
        assert any(name.startswith(f"{section}-") for name in CASES), f"no corpus case for {section}"


@pytest.mark.parametrize("name", CASES)
def test_every_command_refuses_the_file_in_one_line_before_contacting_anything(corpus_run: CorpusRun,
                                                                               name: str) -> None:
    file = corpus_run.folder / name
    expectation = Expectation.of(file)
    problems = []
    for command in COMMANDS:
        result = corpus_run.results[(name, " ".join(command))]
        for problem in expectation.check(file, result.exit_code, result.stderr):
            problems.append(f"archfleet {' '.join(command)}: {problem}; stderr: {result.stderr.strip()[:400]!r}")
    assert not problems, "\n".join(problems)
    assert corpus_run.listener.connections == [], "a malformed fleet file led to a connection"


@pytest.mark.parametrize("name", VALID)
def test_the_file_the_cases_change_is_valid(corpus_run: CorpusRun, name: str) -> None:
    """Each case is this file with one change: so its error is that change's, not a defect they all share."""
    load_fleet(corpus_run.folder / name)


@pytest.mark.parametrize("section", SECTIONS)
def test_the_console_script_says_the_same_as_the_forked_cli(corpus_run: CorpusRun, section: str) -> None:
    """The real `.venv/bin/archfleet` on the first case of each section, one command each: the same result."""
    name = next(n for n in CASES if n.startswith(f"{section}-"))
    command = COMMANDS[SECTIONS.index(section) % len(COMMANDS)]
    label = " ".join(command)
    real = run_console_script([*command, "-f", str(corpus_run.folder / name)], corpus_run.env)
    forked = corpus_run.results[(name, label)]
    assert (real.exit_code, real.stderr) == (forked.exit_code, forked.stderr)
    assert corpus_run.listener.connections == []


def test_the_listener_would_have_noticed_a_connection(tmp_path: Path) -> None:
    """The check above can fail: a connection to the listener is recorded."""
    import socket
    import time

    listener = ConnectionRecorder(tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5):
            pass
        deadline = time.monotonic() + 5
        while not listener.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(listener.connections) == 1
    finally:
        listener.close()


def test_an_expectation_that_does_not_match_is_reported(tmp_path: Path) -> None:
    file = tmp_path / "case.yaml"
    file.write_text("# expect: 3 services.web.image not an image\n")
    expectation = Expectation.of(file)
    assert expectation.check(file, 2, f"archfleet: error: {file}:3: services.web.image: not an image\n") == []
    assert expectation.check(file, 2, f"archfleet: error: {file}:4: services.web.image: not an image\n")
    assert expectation.check(file, 1, f"archfleet: error: {file}:3: services.web.image: not an image\n")
    assert expectation.check(file, 2, f"{file}:3: services.web.image: not an image\nTraceback (most recent")


def test_loading_in_process_raises_only_input_errors(corpus_run: CorpusRun) -> None:
    for name in CASES:
        with pytest.raises(InputError):
            load_fleet(corpus_run.folder / name)
