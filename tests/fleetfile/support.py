"""What the fleet-file tests share: a loopback listener that records every connection, the corpus copied with
the listener's address filled in, and a way to run the `archfleet` command line many times quickly.

Running the CLI: `archfleet` spends about a second importing pyinfra before it reads anything, so the corpus
(100 files x 3 commands) goes through tests/fleetfile/cli_zygote.py, a process that imports it once and forks a
child per run, which runs ``archfleet.cli.main`` with its own environment, stdout and stderr files: the console
script's code path after its imports. ``run_console_script`` runs the real ``.venv/bin/archfleet`` for a sample,
to show both agree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
CONSOLE_SCRIPT = Path(sys.executable).parent / "archfleet"
EXPECT_PREFIX = b"# expect: "
PRIVATE_FILES = ("token", "password")
WORLD_READABLE_FILES = ("world-readable-secret", "world-readable-password")


class ConnectionRecorder:
    """The loopback listener (tests/fleetfile/listener.py, a process of its own) and the connections it saw."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "connections.log"
        self.log.touch()
        self.process = subprocess.Popen([sys.executable, "-m", "tests.fleetfile.listener", str(self.log)],
                                        cwd=PROJECT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def connections(self) -> list[str]:
        return self.log.read_text().splitlines()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def copy_corpus(destination: Path, listener: ConnectionRecorder) -> Path:
    """The corpus under ``destination``, with ``@LISTENER@``/``@PORT@`` filled in and the support files' modes set."""
    target = destination / "corpus"
    shutil.copytree(CORPUS, target)
    for path in target.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".py"):
            data = path.read_bytes()
            path.write_bytes(data.replace(b"@LISTENER@", listener.address.encode())
                             .replace(b"@PORT@", str(listener.port).encode()))
    for name in PRIVATE_FILES:
        (target / "support" / name).chmod(0o600)
    for name in WORLD_READABLE_FILES:
        (target / "support" / name).chmod(0o644)
    return target


@dataclass(frozen=True)
class Expectation:
    line: int
    path: str
    text: str

    @classmethod
    def of(cls, file: Path) -> Expectation:
        """From the file's first line: ``# expect: LINE key.path text the error contains``."""
        first = file.read_bytes().split(b"\n", 1)[0]
        assert first.startswith(EXPECT_PREFIX), f"{file.name}: the first line is not '# expect: LINE PATH TEXT'"
        line, path, text = first[len(EXPECT_PREFIX):].decode().split(" ", 2)
        return cls(int(line), path, text)

    def check(self, file: Path, exit_code: int, stderr: str) -> list[str]:
        """What is wrong with a run's result (empty when it is right)."""
        problems = []
        if exit_code != 2:
            problems.append(f"exit {exit_code}, expected 2")
        if "Traceback" in stderr:
            problems.append("a traceback")
        lines = stderr.strip().splitlines()
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines on stderr, expected 1")
        where = f"{file}:{self.line}: {self.path}: "
        if where not in stderr or self.text not in stderr:
            problems.append(f"expected '{where}...{self.text}'")
        return problems


@dataclass(frozen=True)
class CliResult:
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str


def run_forked(runs: list[list[str]], env: dict[str, str], work: Path, parallel: int = 4) -> list[CliResult]:
    """Each argv of ``runs`` through ``archfleet.cli.main`` in a child forked by tests/fleetfile/cli_zygote.py."""
    work.mkdir(parents=True, exist_ok=True)
    jobs = [{"id": index, "argv": argv, "env": env, "stdout": str(work / f"{index}.out"),
             "stderr": str(work / f"{index}.err")} for index, argv in enumerate(runs)]
    done = subprocess.run([sys.executable, "-m", "tests.fleetfile.cli_zygote", str(parallel)], cwd=PROJECT,
                          input="".join(json.dumps(job) + "\n" for job in jobs), capture_output=True, text=True,
                          timeout=1800, check=False)
    assert done.returncode == 0, done.stderr
    exits = {result["id"]: result["exit"] for result in map(json.loads, done.stdout.splitlines())}
    return [CliResult(tuple(argv), exits[index], (work / f"{index}.out").read_text(errors="replace"),
                      (work / f"{index}.err").read_text(errors="replace")) for index, argv in enumerate(runs)]


def run_console_script(argv: list[str], env: dict[str, str], timeout: float = 120) -> CliResult:
    """The real ``archfleet`` console script in a subprocess."""
    done = subprocess.run([str(CONSOLE_SCRIPT), *argv], env=env, capture_output=True, text=True,
                          errors="replace", timeout=timeout, check=False)
    return CliResult(tuple(argv), done.returncode, done.stdout, done.stderr)


def cli_environment(home: Path, listener: ConnectionRecorder) -> dict[str, str]:
    """An environment in which everything archfleet could contact is the listener (or nothing)."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AWS_ENDPOINT_URL": f"http://{listener.address}",
        "AWS_ACCESS_KEY_ID": "corpus-test",
        "AWS_SECRET_ACCESS_KEY": "corpus-test",
        "AWS_REGION": "eu-west-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "ARCHFLEET_LAB_DIR": str(home / "no-lab"),
        "ARCHFLEET_CACHE_DIR": str(home / "cache"),
        "DOCKER_HOST": f"tcp://{listener.address}",
    }
