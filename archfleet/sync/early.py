"""The no-op sync's reads, started before archfleet has imported its own code: ``archfleet sync`` spends its first
tens of milliseconds importing and loading the fleet file, while every host's ``ssh`` could already be answering.

After a sync that read its hosts over OpenSSH, ``remember`` writes what it ran (each host's exact ``ssh`` command
line) and what that depended on (the fleet file, the inventory and every other file the load opened, with their
size, mtime and inode; the ``ARCHFLEET_*`` environment) to a private cache file. The next ``archfleet sync`` of the
same fleet file and ``--limit`` calls ``start`` first thing: when every one of those inputs is unchanged it starts
the same commands at once (importing only the standard library); else it starts nothing.

It is a speculation, checked before it is used: once the fleet is loaded, ``adopt`` keeps a started read only for a
host whose freshly made command line is exactly the one started; any other is stopped and read afresh. So the
results are those of a sync without it; what it can cost is one extra read-only command on a host whose command
line changed without any recorded input changing (a new archfleet, say). A load that ran a subprocess or opened a
connection (a dynamic inventory such as ``inventories/ec2.py``) is not remembered: its hosts may be others next time.

The cache (``$XDG_CACHE_HOME/archfleet/sync-reads/``, else ``~/.cache/...``) is used only when the folder and file
belong to the user and nobody else can write them, and only for ``ssh`` command lines. It holds host names,
addresses, ssh options and file paths: no secret. Which files the load opens is seen through an audit hook
(``recording_inputs``), installed only in a sync that has to remember. It is written with ``marshal``, which
the interpreter has built in: reading it imports nothing, where ``json`` would (the reads start before ``json``
and ``typing`` are imported: tests/test_sync_early.py). A cache that another Python wrote, or that is not
marshal data, is not read (the next sync writes it anew).
"""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from archfleet.user_cache import user_cache_dir

TYPE_CHECKING = False  # typing is imported for the type checker only: the reads start before it would be
if TYPE_CHECKING:
    from typing import Any

CACHE_VERSION = 2
SYNC_FLAGS = ("--dry", "--prune", "--json")
NOT_REMEMBERED_EVENTS = ("socket.connect", "socket.getaddrinfo", "subprocess.Popen", "os.system", "os.exec",
                         "os.posix_spawn", "os.fork", "urllib.Request")
CODE_SUFFIXES = (".pyc", ".so", ".pth")
NOOP = "noop"  # the cache's field for a no-op sync's verdict (archfleet.sync.noop_memo)

Stat = list[int] | None  # [mtime_ns, size, inode]; None: no such file


def sync_key(argv: list[str]) -> dict[str, Any] | None:
    """``{"fleet": real path, "limit": ...}`` for ``archfleet sync`` arguments (after ``sync``), or None for any
    arguments this reader does not know (argparse reads them, and reports what is wrong)."""
    fleet, limit, words = None, None, list(argv)
    while words:
        word = words.pop(0)
        if word in SYNC_FLAGS:
            continue
        name, equals, value = word.partition("=")
        if name in ("-f", "--fleet", "--limit"):
            if not equals:
                if not words:
                    return None
                value = words.pop(0)
            if name == "--limit":
                limit = value
            else:
                fleet = value
            continue
        return None
    path = fleet or os.environ.get("ARCHFLEET_FLEET") or "fleet.yaml"
    return {"fleet": os.path.realpath(os.path.expanduser(path)), "limit": limit}


def cache_dir() -> str:
    return user_cache_dir("sync-reads")


def cache_file(key: dict[str, Any]) -> str:
    name = zlib.crc32(repr(sorted(key.items())).encode())  # the key itself is checked inside the file
    return os.path.join(cache_dir(), f"{name:08x}.marshal")


def stat_of(path: str) -> Stat:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_mtime_ns, status.st_size, status.st_ino]


def environment() -> dict[str, str]:
    return {name: value for name, value in sorted(os.environ.items()) if name.startswith("ARCHFLEET_")}


def private(path: str, *, folder: bool) -> bool:
    """Owned by this user and writable by nobody else (a cache that runs commands must be the user's own)."""
    try:
        status = os.stat(path)
    except OSError:
        return False
    return status.st_uid == os.getuid() and not status.st_mode & (0o022 if folder else 0o077)


def read_cache(key: dict[str, Any]) -> dict[str, Any] | None:
    """The remembered reads of ``key``, when the cache is private, of this version and this key, else None."""
    path = cache_file(key)
    if not (private(cache_dir(), folder=True) and private(path, folder=False)):
        return None
    try:
        with open(path, "rb") as file:
            cached = marshal.load(file)
    except (OSError, ValueError, EOFError, TypeError):  # unreadable, or not marshal data of this Python
        return None
    if not isinstance(cached, dict) or cached.get("version") != CACHE_VERSION or cached.get("key") != key:
        return None
    reads = cached.get("reads")
    if not isinstance(reads, dict) or not all(
            isinstance(argv, list) and argv[:1] == ["ssh"] and all(isinstance(word, str) for word in argv)
            for argv in reads.values()):
        return None
    return cached


def unchanged(cached: dict[str, Any]) -> bool:
    """Every input the cached reads were made from is as it was (and the environment too)."""
    if cached.get("environment") != environment():
        return False
    inputs = cached.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        return False
    return all(isinstance(entry, list) and len(entry) == 2 and stat_of(entry[0]) == entry[1] for entry in inputs)


class FinishedRead:
    """A started read that has already been waited for (archfleet.sync.noop_memo): what it printed and its exit
    status, handed over like the process it was (``communicate``, ``returncode``, ``poll``, ``kill``)."""

    def __init__(self, returncode: int, stdout: bytes, stderr: bytes):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr

    def communicate(self, timeout: float | None = None) -> tuple[bytes, bytes]:
        return self.stdout, self.stderr

    def poll(self) -> int:
        return self.returncode

    def kill(self) -> None:
        pass


class EarlyReads:
    """The remembered commands, started: ``adopt`` hands over those still wanted, ``discard`` stops the rest."""

    def __init__(self, key: dict[str, Any], cached: dict[str, Any]):
        self.key, self.cached = key, cached
        self.argv: dict[str, list[str]] = dict(cached["reads"])
        self.watched_before: dict[str, bytes] = {}  # accept-new known_hosts files, read before any ssh ran
        for file in cached.get("watch") or []:
            with open(file, "rb") as handle:
                self.watched_before[file] = handle.read()
        self.started_at = time.monotonic()
        self.processes: dict[str, subprocess.Popen[bytes] | FinishedRead] = {}
        for name, argv in self.argv.items():
            self.processes[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                    stderr=subprocess.PIPE)

    def wait(self, bound: float) -> dict[str, FinishedRead] | None:
        """Every read, waited for until ``bound`` seconds after the start: each stays here, finished, for ``adopt``
        (None when one is still running then; it is left running)."""
        finished: dict[str, FinishedRead] = {}
        for name, process in self.processes.items():
            if isinstance(process, FinishedRead):
                finished[name] = process
                continue
            try:
                out, err = process.communicate(timeout=max(0.0, self.started_at + bound - time.monotonic()))
            except subprocess.TimeoutExpired:
                return None
            finished[name] = self.processes[name] = FinishedRead(process.returncode, out, err)
        return finished

    def adopt(self, name: str, argv: list[str]) -> subprocess.Popen[bytes] | FinishedRead | None:
        """The started read of ``name`` if it runs exactly ``argv`` (the caller then owns it), else None."""
        if self.argv.get(name) != argv:
            return None
        self.argv.pop(name)
        return self.processes.pop(name)

    def discard(self) -> list[str]:
        """Stop every read not adopted (by its own process); the hosts they were for."""
        names = list(self.processes)
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.communicate()
        self.processes.clear()
        return names


_started: EarlyReads | None = None
_key: dict[str, Any] | None = None


def start(argv: list[str]) -> EarlyReads | None:
    """Start the remembered reads of ``archfleet sync ARGV`` when nothing they depend on changed."""
    global _started, _key, _document
    _started, _key, _document = None, sync_key(argv), None
    if _key is None:
        return None
    cached = read_cache(_key)
    if cached is None or not unchanged(cached):
        return None
    if not all(os.path.isfile(file) for file in cached.get("watch") or []):
        return None  # a known_hosts file is gone: the usual path creates it and reports the keys recorded
    try:
        _started = EarlyReads(_key, cached)
    except OSError:
        return None
    return _started


def started() -> EarlyReads | None:
    """The reads ``start`` started in this process, if any."""
    return _started


def discard() -> None:
    """Stop what was started and not adopted (the CLI's last word, whatever happened)."""
    if _started is not None:
        _started.discard()


# --- remembering -----------------------------------------------------------------------------------------------------


class InputRecorder:
    """The files opened (and whether anything was run or connected to) while it is recording."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.dynamic = False
        self.recording = False

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.recording:
            return
        if event == "open":
            path = args[0]
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if isinstance(path, str) and not path.endswith(CODE_SUFFIXES):
                self.files.append(os.path.realpath(path))
        elif event.startswith(NOT_REMEMBERED_EVENTS):
            self.dynamic = True


_recorder: InputRecorder | None = None
_document: dict[str, Any] | None = None  # what this sync remembered (or found remembered, unchanged)


@contextmanager
def recording_inputs(*, needed: bool) -> Iterator[None]:
    """Record the files opened inside (the fleet load) for ``remember``; ``needed`` False records nothing."""
    global _recorder
    if not needed:
        yield
        return
    if _recorder is None:
        _recorder = InputRecorder()
        sys.addaudithook(_recorder.hook)  # it cannot be removed: it stays, and does nothing while not recording
    _recorder.recording = True
    try:
        yield
    finally:
        _recorder.recording = False


def must_record() -> bool:
    """Whether this sync has to watch its load to remember its reads (nothing was started from the cache)."""
    return _key is not None and _started is None


def remember(argv: dict[str, list[str]], watch: list[str], say: Callable[[str], None] | None = None) -> None:
    """Write this sync's reads for the next one (when its load was watched, or its cache was used; quietly not,
    when the cache cannot be written)."""
    if _key is None:
        return
    if _started is not None:
        inputs = [[path, stat_of(path)] for path, _ in _started.cached["inputs"]]
    elif _recorder is not None and not _recorder.dynamic and _recorder.files:
        inputs = [[path, stat_of(path)] for path in dict.fromkeys(_recorder.files)]
    else:
        return
    document = {"version": CACHE_VERSION, "key": _key, "environment": environment(), "inputs": inputs,
                "watch": sorted(set(watch)), "reads": argv}
    global _document
    if _started is not None and document == {k: v for k, v in _started.cached.items() if k != NOOP}:
        _document = _started.cached  # unchanged: its remembered no-op (if any) stands as well
        return
    _document = document
    write_cache(document, say)


def remembering() -> bool:
    """Whether this sync's reads were remembered (or found remembered): a verdict can be added to them."""
    return _document is not None


def remember_noop(noop: dict[str, Any], say: Callable[[str], None] | None = None) -> None:
    """Add a no-op sync's verdict (archfleet.sync.noop_memo) to the reads this sync remembered."""
    if _document is None or _document.get(NOOP) == noop:
        return
    _document[NOOP] = noop
    write_cache(_document, say)


def write_cache(document: dict[str, Any], say: Callable[[str], None] | None) -> None:
    assert _key is not None
    path = cache_file(_key)
    try:
        os.makedirs(cache_dir(), mode=0o700, exist_ok=True)
        if not private(cache_dir(), folder=True):
            return
        temporary = f"{path}.{os.getpid()}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            marshal.dump(document, file)
        os.replace(temporary, path)
    except OSError as error:
        if say is not None:
            say(f"sync: could not remember this sync's reads in {path}: {error.strerror}")
