"""Stand-in for GitHub (test only: github.com is out of reach here), served on the lab gateway.

What a self-hosted runner service meets, and nothing more:

- the REST API under ``/api/v3`` (GitHub Enterprise Server's shape), authenticated with ``Authorization: Bearer``
  and a fine-grained token (PAT) or a GitHub App installation token, for a repository (``repos/OWNER/REPO``) or
  an organisation (``orgs/ORG``):
  ``POST .../actions/runners/registration-token`` and ``.../remove-token`` (a fresh token each call, valid an hour),
  ``POST .../actions/runners/generate-jitconfig`` (a registered runner and its base64 JIT config),
  ``GET .../actions/runners`` (the registry) and ``DELETE .../actions/runners/ID``;
- a GitHub App: ``POST /api/v3/app/installations/ID/access_tokens`` with ``Bearer <JWT>`` (RS256, signed with the
  App's private key, checked against its public key, ``iss`` the App id, not expired) gives an installation token;
- the runner side (the real runner speaks the Actions service protocol; the stand-in runner release in
  ``github-runner-release-standin/`` speaks this small one): ``POST|DELETE /api/v3/actions/runner-registration``
  with ``Authorization: RemoteAuth <registration or removal token>`` registers or removes a runner;
  ``GET /_standin/actions/jobs/next`` (long poll, ``Bearer <runner credential>``) hands a queued job whose labels
  are all among the runner's, ``POST /_standin/actions/jobs/ID/result`` takes its exit code and output; an ephemeral
  runner is removed from the registry once its job is done, as GitHub does;
- the stand-in runner release as a tarball (``/releases/actions-runner-standin.tar.gz``) and its sha256
  (``.sha256``), built reproducibly so that the image's build arguments stay the same from run to run.

The test drives it in-process: ``queue_job``, ``wait_job``, ``runners``, the record of every token it minted and
which registration used which, and when each runner was registered and removed.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import secrets
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RELEASE_DIR = Path(__file__).resolve().parent / "github-runner-release-standin"
RELEASE_PATH = "/releases/actions-runner-standin.tar.gz"
TOKEN_LIFETIME = 3600.0
SCOPE = r"/api/v3/(?:repos/[^/]+/[^/]+|orgs/[^/]+)/actions/runners"


def release_tarball() -> bytes:
    """config.sh and run.sh as a .tar.gz whose bytes depend on their content only (no times, owners)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for path in sorted(RELEASE_DIR.iterdir()):
            data = path.read_bytes()
            info = tarfile.TarInfo(f"./{path.name}")
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def _unbase64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Runner:
    id: int
    name: str
    labels: list[str]
    ephemeral: bool
    credential: str
    registered_with: str  # the registration token, or "jit"
    registered_at: float = field(default_factory=time.time)  # epoch seconds (the lab hosts share this clock)
    removed_at: float | None = None


@dataclass
class Job:
    id: int
    labels: list[str]
    command: str
    runner: str | None = None  # the name of the runner that took it
    exit_code: int | None = None
    output: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Minted:
    kind: str  # registration, remove, jit
    token: str
    expires: float
    used_by: str | None = None  # the runner name it registered or removed


class GitHubStandin:
    def __init__(self, address: str, port: int, pat: str, app: tuple[str, str, bytes] | None = None):
        """``app``: (App id, installation id, the App's public key in PEM)."""
        self.pat = pat
        self.app = app
        self.installation_tokens: list[str] = []
        self.release = release_tarball()
        self.release_sha256 = hashlib.sha256(self.release).hexdigest()
        self.lock = threading.Condition()
        self.minted: list[Minted] = []
        self.registry: dict[int, Runner] = {}
        self.removed: list[Runner] = []
        self.jobs: dict[int, Job] = {}
        self.requests: list[str] = []  # "METHOD PATH STATUS", no headers or bodies
        self._next_id = 1
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                standin.handle(self, "GET")

            def do_POST(self) -> None:
                standin.handle(self, "POST")

            def do_DELETE(self) -> None:
                standin.handle(self, "DELETE")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{address}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> GitHubStandin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- what the test asks -----------------------------------------------------------------------------

    def runners(self) -> list[Runner]:
        with self.lock:
            return list(self.registry.values())

    def queue_job(self, labels: list[str], command: str) -> Job:
        with self.lock:
            job = Job(self._new_id(), labels, command)
            self.jobs[job.id] = job
            self.lock.notify_all()
            return job

    def wait_job(self, job: Job, timeout: float) -> Job:
        assert job.done.wait(timeout), f"job {job.id} {job.labels} not done in {timeout} s: {self.requests[-20:]}"
        return job

    def wait_for(self, predicate: object, timeout: float, what: str) -> None:
        """Until ``predicate()`` (called under the lock) is true."""
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, f"stand-in GitHub: {what} not seen after {timeout} s; runners {self.registry}"
                self.lock.wait(min(left, 1.0))

    def tokens(self) -> list[str]:
        """Every secret it handed out or accepts: the PAT, the minted tokens, the runners' credentials."""
        with self.lock:
            runners = [*self.registry.values(), *self.removed]
            return [self.pat, *self.installation_tokens, *(m.token for m in self.minted),
                    *(r.credential for r in runners)]

    # ---- HTTP -------------------------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path, _, query = request.path.partition("?")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length) or b"{}") if length else {}
        auth = request.headers.get("Authorization") or ""
        try:
            status, answer = self.route(method, path, params, body, auth)
        except (KeyError, ValueError, TypeError) as error:
            status, answer = 422, {"message": f"bad request: {error}"}
        self.requests.append(f"{method} {path} {status}")
        data = answer if isinstance(answer, bytes) else (json.dumps(answer).encode() if answer is not None else b"")
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/octet-stream" if isinstance(answer, bytes)
                                else "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            request.close_connection = True  # the runner went away mid long poll (its host was reset)

    def route(self, method: str, path: str, params: dict[str, str], body: dict[str, object],
              auth: str) -> tuple[int, object]:
        if method == "GET" and path == RELEASE_PATH:
            return 200, self.release
        if method == "GET" and path == RELEASE_PATH + ".sha256":
            return 200, f"{self.release_sha256}  actions-runner-standin.tar.gz\n".encode()
        if path == "/api/v3/actions/runner-registration":
            return self.runner_registration(method, body, auth)
        if path.startswith("/_standin/actions/jobs/"):
            return self.job_protocol(method, path, params, body, auth)
        if method == "POST" and self.app and path == f"/api/v3/app/installations/{self.app[1]}/access_tokens":
            if not self._valid_app_jwt(auth.removeprefix("Bearer ")):
                return 401, {"message": "A JSON web token could not be decoded"}
            token = "ghs_" + secrets.token_hex(18)
            with self.lock:
                self.installation_tokens.append(token)
            return 201, {"token": token, "expires_at": "in an hour"}
        match = re.fullmatch(SCOPE + r"(?:/(?P<what>registration-token|remove-token|generate-jitconfig|\d+))?", path)
        if not match:
            return 404, {"message": "Not Found"}
        if auth.removeprefix("Bearer ") not in (self.pat, *self.installation_tokens):
            return 401, {"message": "Bad credentials"}
        what = match["what"]
        with self.lock:
            if method == "POST" and what in ("registration-token", "remove-token"):
                minted = Minted("registration" if what == "registration-token" else "remove",
                                secrets.token_hex(20).upper(), time.time() + TOKEN_LIFETIME)
                self.minted.append(minted)
                expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minted.expires))
                return 201, {"token": minted.token, "expires_at": expires}
            if method == "POST" and what == "generate-jitconfig":
                runner = self._register(str(body["name"]), [str(x) for x in body["labels"]],  # type: ignore[attr-defined]
                                        True, "jit")
                config = {"runner_id": runner.id, "credential": runner.credential,
                          "origin": self.url}
                encoded = base64.b64encode(json.dumps(config).encode()).decode()
                self.minted.append(Minted("jit", encoded, time.time() + TOKEN_LIFETIME, runner.name))
                return 201, {"runner": {"id": runner.id, "name": runner.name}, "encoded_jit_config": encoded}
            if method == "GET" and what is None:
                listed = [{"id": r.id, "name": r.name, "status": "online",
                           "labels": [{"name": label} for label in r.labels]} for r in self.registry.values()]
                return 200, {"total_count": len(listed), "runners": listed}
            if method == "DELETE" and what and what.isdigit() and int(what) in self.registry:
                self._remove(int(what))
                return 204, None
        return 404, {"message": "Not Found"}

    def _valid_app_jwt(self, jwt: str) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        assert self.app is not None
        try:
            header, payload, signature = jwt.split(".")
            key = serialization.load_pem_public_key(self.app[2])
            assert isinstance(key, rsa.RSAPublicKey)
            key.verify(_unbase64url(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
            claims = json.loads(_unbase64url(payload))
        except (ValueError, InvalidSignature):
            return False
        return (json.loads(_unbase64url(header)).get("alg") == "RS256" and str(claims.get("iss")) == self.app[0]
                and claims.get("iat", 1e12) <= time.time() + 60 < claims.get("exp", 0) + 60)

    def _usable(self, auth: str, kind: str) -> Minted | None:
        token = auth.removeprefix("RemoteAuth ")
        for minted in self.minted:
            if minted.kind == kind and minted.token == token and minted.expires > time.time():
                return minted
        return None

    def _register(self, name: str, labels: list[str], ephemeral: bool, token: str) -> Runner:
        for old in [r for r in self.registry.values() if r.name == name]:  # --replace
            self._remove(old.id)
        runner = Runner(self._new_id(), name, labels, ephemeral, secrets.token_hex(24), token)
        self.registry[runner.id] = runner
        self.lock.notify_all()
        return runner

    def _remove(self, runner_id: int) -> None:
        runner = self.registry.pop(runner_id)
        runner.removed_at = time.time()
        self.removed.append(runner)
        self.lock.notify_all()

    def runner_registration(self, method: str, body: dict[str, object], auth: str) -> tuple[int, object]:
        with self.lock:
            if method == "POST" and body.get("runner_event") == "register":
                minted = self._usable(auth, "registration")
                if minted is None:
                    return 401, {"message": "invalid or expired registration token"}
                labels = [str(x) for x in body["labels"]]  # type: ignore[attr-defined]
                runner = self._register(str(body["name"]), labels, bool(body["ephemeral"]), minted.token)
                minted.used_by = runner.name
                return 200, {"runner_id": runner.id, "name": runner.name, "labels": runner.labels,
                             "credential": runner.credential}
            if method == "DELETE":
                minted = self._usable(auth, "remove")
                runner_id = int(str(body["runner_id"]))
                if minted is None:
                    return 401, {"message": "invalid or expired removal token"}
                if runner_id not in self.registry:
                    return 404, {"message": "no such runner"}
                minted.used_by = self.registry[runner_id].name
                self._remove(runner_id)
                return 204, None
        return 404, {"message": "Not Found"}

    def _runner_of(self, auth: str, params: dict[str, str]) -> Runner | None:
        runner = self.registry.get(int(params.get("runner_id", "0")))
        return runner if runner and auth == f"Bearer {runner.credential}" else None

    def job_protocol(self, method: str, path: str, params: dict[str, str], body: dict[str, object],
                     auth: str) -> tuple[int, object]:
        deadline = time.monotonic() + 10
        with self.lock:
            if method == "GET" and path == "/_standin/actions/jobs/next":
                while True:
                    runner = self._runner_of(auth, params)
                    if runner is None:
                        return 401, {"message": "unknown runner"}
                    own = {label.lower() for label in runner.labels}
                    for job in self.jobs.values():
                        if job.runner is None and {label.lower() for label in job.labels} <= own:
                            job.runner = runner.name
                            return 200, {"id": job.id, "command": job.command}
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return 204, None
                    self.lock.wait(left)
            match = re.fullmatch(r"/_standin/actions/jobs/(\d+)/result", path)
            runner = self._runner_of(auth, params)
            if method == "POST" and match and runner is not None:
                job = self.jobs[int(match[1])]
                if job.runner != runner.name:
                    return 403, {"message": "not this runner's job"}
                job.exit_code, job.output = int(str(body["exit_code"])), str(body["output"])
                job.done.set()
                if runner.ephemeral:
                    self._remove(runner.id)
                return 204, None
        return 404, {"message": "Not Found"}
