"""Reading the Docker engine's progress messages (pure: messages and times in, progress lines out).

The engine's API streams JSON messages. A build (the classic builder of Debian's 20.10 engine, which is what the
API's ``/build`` endpoint runs) sends text in ``stream``: ``Step 3/7 : RUN apt-get ...``, then ``---> Using cache``
when the step came from the layer cache, the step's own output, ``---> 1a2b3c`` when it is done. A pull or push
sends per-layer ``status`` (``Pull complete``, ``Already exists``, ``Pushed``, ``Layer already exists``, ``Mounted
from ...``). Any of them may end with ``error`` instead.

- :class:`BuildStream` folds build messages into steps and gives one line per step (with ``(cached)`` or its
  elapsed time), a line for a step still running after a while, and the counts of cached and run steps.
- :class:`LayerStream` folds pull/push messages into layer counts and the pushed digest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
USING_CACHE = " ---> Using cache"
INSTRUCTION_WIDTH = 60
STILL_RUNNING_EVERY = 30.0  # seconds between "still running" lines of one long step


def stream_error(message: Mapping[str, Any]) -> str | None:
    """The error a message carries (``error`` / ``errorDetail.message``), as one line; None for progress."""
    detail = message.get("errorDetail")
    text = message.get("error") or (detail.get("message") if isinstance(detail, Mapping) else None)
    if not text:
        return None
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " | ".join(lines) if lines else "unknown error"


def short_instruction(text: str, width: int = INSTRUCTION_WIDTH) -> str:
    """A Dockerfile instruction on one line of at most ``width`` characters."""
    words = " ".join(text.split())
    return words if len(words) <= width else words[: width - 3].rstrip() + "..."


@dataclass
class BuildStep:
    number: int
    total: int
    instruction: str  # as the engine printed it (build args not expanded)
    started: float
    seconds: float | None = None  # set when the step is done
    cached: bool = False
    last_report: float = 0.0  # when a line about this step was last printed
    after_from: bool = False  # a FROM came before this step

    @property
    def countable(self) -> bool:
        """Whether the step can come from the cache: not a FROM, nor an ARG before the first FROM."""
        keyword = self.instruction.split(" ", 1)[0].upper()
        return keyword != "FROM" and (keyword != "ARG" or self.after_from)

    def line(self) -> str:
        head = f"step {self.number}/{self.total} {short_instruction(self.instruction)}"
        if self.seconds is None:
            return head
        return f"{head} (cached)" if self.cached else f"{head} ({self.seconds:.1f} s)"


@dataclass
class BuildStream:
    """One build's messages, folded. ``feed`` and ``tick`` return the progress lines to print."""

    steps: list[BuildStep] = field(default_factory=list)
    image_id: str | None = None
    error: str | None = None
    _pending: str = ""  # text of a line not yet ended

    @property
    def current(self) -> BuildStep | None:
        return self.steps[-1] if self.steps and self.steps[-1].seconds is None else None

    def feed(self, message: Mapping[str, Any], now: float) -> list[str]:
        error = stream_error(message)
        if error is not None:
            self.error = error
            return []
        aux = message.get("aux")
        if isinstance(aux, Mapping) and aux.get("ID"):
            self.image_id = str(aux["ID"])
        text = message.get("stream")
        if not isinstance(text, str):
            return []
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        printed: list[str] = []
        for line in lines:
            printed += self._line(line.rstrip("\r"), now)
        return printed

    def _line(self, line: str, now: float) -> list[str]:
        match = STEP.match(line)
        if match:
            printed = self._end_step(now)
            number, total, instruction = int(match[1]), int(match[2]), match[3]
            after_from = any(s.instruction.upper().startswith("FROM") for s in self.steps)
            self.steps.append(BuildStep(number, total, instruction, now, last_report=now, after_from=after_from))
            return printed
        if line == USING_CACHE and self.current is not None:
            self.current.cached = True
        elif line.startswith("Successfully built "):
            return self._end_step(now)
        return []

    def _end_step(self, now: float) -> list[str]:
        step = self.current
        if step is None:
            return []
        step.seconds = now - step.started
        return [step.line()]

    def tick(self, now: float, every: float = STILL_RUNNING_EVERY) -> list[str]:
        """A line for a step that has been running ``every`` seconds since its last line."""
        step = self.current
        if step is None or now - step.last_report < every:
            return []
        step.last_report = now
        return [f"{step.line()} still running ({now - step.started:.0f} s)"]

    def finish(self, now: float) -> list[str]:
        """The end of the stream: the last step's line (a failed step is reported with its error)."""
        if self._pending:
            self._line(self._pending, now)
            self._pending = ""
        step = self.current
        if step is None:
            return []
        if self.error is not None:
            step.seconds = now - step.started
            return [f"step {step.number}/{step.total} {short_instruction(step.instruction)} "
                    f"failed after {step.seconds:.1f} s"]
        return self._end_step(now)

    @property
    def cached_steps(self) -> int:
        return sum(1 for s in self.steps if s.countable and s.cached)

    @property
    def run_steps(self) -> int:
        return sum(1 for s in self.steps if s.countable and not s.cached and s.seconds is not None)


@dataclass
class LayerStream:
    """One pull's or push's messages, folded: which layers moved and which were already there."""

    moved: set[str] = field(default_factory=set)  # pulled, or pushed
    present: set[str] = field(default_factory=set)  # already in the engine (pull) or in the registry (push)
    digest: str | None = None  # the pushed manifest's digest
    error: str | None = None

    MOVED = ("Pull complete", "Pushed")
    PRESENT = ("Already exists", "Layer already exists")

    def feed(self, message: Mapping[str, Any]) -> None:
        error = stream_error(message)
        if error is not None:
            self.error = error
            return
        aux = message.get("aux")
        if isinstance(aux, Mapping) and aux.get("Digest"):
            self.digest = str(aux["Digest"])
        status, layer = str(message.get("status") or ""), str(message.get("id") or "")
        if not layer:
            return
        if status in self.MOVED:
            self.moved.add(layer)
        elif status in self.PRESENT or status.startswith("Mounted from "):
            self.present.add(layer)

    def summary(self, moved_word: str, present_where: str) -> str:
        """``2 layers pushed, 5 already in the registry``."""
        layers = "layer" if len(self.moved) == 1 else "layers"
        return f"{len(self.moved)} {layers} {moved_word}, {len(self.present)} already {present_where}"


# BuildKit's plain progress (``docker build --progress=plain`` with DOCKER_BUILDKIT=1, or ``docker buildx build``):
# each vertex is ``#N [STAGE k/total] INSTRUCTION``, then its output ``#N 0.512 text``, then ``#N CACHED``,
# ``#N DONE 1.3s`` or ``#N ERROR: reason``; vertices of one build may interleave. The CLI ends a failed build with
# a line of its own: the failing step's error again, or the frontend's (``failed to solve with frontend
# dockerfile.v0: ... Unknown flag: link``), after a ``------`` box quoting the step.
VERTEX = re.compile(r"^#(\d+) \[(?:[^\]\s]+ )?(\d+)/(\d+)\] (.*)$")
VERTEX_STATE = re.compile(r"^#(\d+) (CACHED|DONE(?: ([\d.]+)s)?|ERROR:? ?(.*))$")
CLI_ERROR_PREFIX = re.compile(r"^(?:error|ERROR): ")


@dataclass
class BuildKitStream(BuildStream):
    """BuildKit's plain progress lines (fed as ``{"stream": text}``), folded into the same steps, lines and counts
    as :class:`BuildStream`: one line per Dockerfile step when it is done, ``(cached)`` or its time."""

    vertices: dict[int, BuildStep] = field(default_factory=dict)
    failed_step: BuildStep | None = None
    last_text: str | None = None  # the last line that is no vertex's: a failed build's own error line

    @property
    def current(self) -> BuildStep | None:
        running = [s for s in self.steps if s.seconds is None]
        return running[-1] if running else None

    def _line(self, line: str, now: float) -> list[str]:
        match = VERTEX.match(line)
        if match:
            vertex = int(match[1])
            if vertex not in self.vertices:  # a vertex's header is repeated when its output resumes
                after_from = any(s.instruction.upper().startswith("FROM") for s in self.steps)
                header = BuildStep(int(match[2]), int(match[3]), match[4], now, last_report=now,
                                   after_from=after_from)
                self.vertices[vertex] = header
                self.steps.append(header)
            return []
        state = VERTEX_STATE.match(line)
        if state:
            step = self.vertices.get(int(state[1]))
            if step is None or step.seconds is not None:
                return []
            if state[2] == "CACHED":
                step.cached, step.seconds = True, 0.0
            elif state[2].startswith("DONE"):
                step.seconds = float(state[3]) if state[3] else now - step.started
            else:
                step.seconds = now - step.started
                self.failed_step = step
                self.error = self.error or (state[4] or "failed")
                return [f"step {step.number}/{step.total} {short_instruction(step.instruction)} "
                        f"failed after {step.seconds:.1f} s"]
            return [step.line()]
        text = line.strip()
        if text and not line.startswith(("#", "------", " > ")):
            self.last_text = CLI_ERROR_PREFIX.sub("", text)
        return []

    def finish(self, now: float) -> list[str]:
        if self._pending:
            printed = self._line(self._pending, now)
            self._pending = ""
            return printed
        return []
