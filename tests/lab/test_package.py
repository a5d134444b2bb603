"""archfleet as a user gets it: a wheel installed into a fresh virtualenv, run from a folder outside the checkout.

The wheel is built from this checkout, installed with its dependencies from PyPI (pip's cache makes a second run
quick) into a new virtualenv, and every command runs with the current directory and the fleet outside the checkout,
so nothing can come from the source tree: `init --lab`, `init --hosts`, `hosts bootstrap`, `images build` (a no-op
when the lab registry already has the images), `sync --dry`, `laptop --dry`.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from archfleet.lab.state import LabState
from archfleet.lab.v2ray_client import fetch_with_client
from tests.lab.support import PROJECT

pytestmark = pytest.mark.lab


def run(argv: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """A command with a clean environment: no PYTHONPATH, no ARCHFLEET_FLEET, nothing of the checkout's venv."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "ARCHFLEET_FLEET", "VIRTUAL_ENV")}
    env["PATH"] = f"{Path(argv[0]).parent}:/usr/sbin:/usr/bin:/sbin:/bin"
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``bin`` folder of a fresh virtualenv with the wheel of this checkout installed."""
    root = tmp_path_factory.mktemp("package")
    wheels = root / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(PROJECT)],
                           capture_output=True, text=True, timeout=900, check=False)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("archfleet-*.whl")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    install = run([str(bin_dir / "pip"), "install", "-q", str(wheel)], cwd=root)
    assert install.returncode == 0, install.stderr[-2000:]
    yield bin_dir


def test_the_wheel_carries_everything_under_the_archfleet_namespace(installed: Path, tmp_path: Path) -> None:
    probe = run([str(installed / "python"), "-c", (
        "import archfleet, importlib.util as u; from archfleet.shipped import deploy_file, example_fleet_file, "
        "image_contexts_dir, inventory_file; print(archfleet.__file__); "
        "print(deploy_file('host.py').is_file(), deploy_file('templates/v2ray/config.json.j2').is_file(), "
        "inventory_file('ec2.py').is_file(), example_fleet_file().is_file(), "
        "(image_contexts_dir() / 'v2ray' / 'Dockerfile').is_file()); "
        "print(u.find_spec('facts'), u.find_spec('tasks'), u.find_spec('deploys'))")], cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    location, shipped, top_level = probe.stdout.splitlines()
    assert "/venv/lib/" in location and str(PROJECT) not in location
    assert shipped == "True True True True True"
    assert top_level == "None None None", "no top-level facts/tasks/deploys package may be installed"


def test_init_lab_then_sync_dry_and_laptop_dry_outside_the_checkout(installed: Path, tmp_path: Path,
                                                                    lab: LabState) -> None:
    archfleet = str(installed / "archfleet")
    init = run([archfleet, "init", "--lab", "fleet"], cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    fleet = tmp_path / "fleet" / "fleet.yaml"
    assert fleet.is_file() and (tmp_path / "fleet" / "images" / "v2ray" / "Dockerfile").is_file()
    again = run([archfleet, "init", "--lab", "fleet"], cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr, "init must never overwrite without --force"

    # The fleet's servers (other lab tests may have added hosts of other kinds to the lab's inventory).
    bootstrap = run([archfleet, "hosts", "bootstrap", "--limit", "amd64,arm64"], cwd=tmp_path / "fleet")
    assert bootstrap.returncode == 0, bootstrap.stderr[-3000:] + bootstrap.stdout[-2000:]
    assert "amd64-1" in bootstrap.stdout and "arm64-1" in bootstrap.stdout, bootstrap.stdout
    built = run([archfleet, "images", "build", "-f", str(fleet)], cwd=tmp_path / "fleet", timeout=3600)
    assert built.returncode == 0, built.stderr[-3000:]
    dry = run([archfleet, "sync", "--dry", "--limit", "amd64,arm64"], cwd=tmp_path / "fleet")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "amd64-1" in dry.stdout and "arm64-1" in dry.stdout, dry.stdout

    laptop = run([archfleet, "laptop", "--dry"], cwd=tmp_path)
    assert laptop.returncode == 0, laptop.stderr[-3000:]
    assert "laptop: 1 host(s)" in laptop.stdout and "0 failed" in laptop.stdout, laptop.stdout
    assert "Traceback" not in laptop.stderr + dry.stderr + built.stderr


def test_init_hosts_writes_a_fleet_that_loads(installed: Path, tmp_path: Path) -> None:
    archfleet = str(installed / "archfleet")
    init = run([archfleet, "init", "mine", "--hosts", "web-1=127.0.0.1,admin@127.0.0.2:2222",
                "--registry", "registry.example.com:5000", "--user", "admin"], cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    inventory = (tmp_path / "mine" / "inventories" / "hosts.py").read_text()
    assert "('web-1', {'ssh_hostname': '127.0.0.1'})" in inventory
    assert "'ssh_port': 2222" in inventory and "'ssh_user': 'admin'" in inventory
    # The written file passes the same load every command runs (offline: these hosts are never contacted).
    load = run([str(installed / "python"), "-c",
                "from pathlib import Path; from archfleet.fleet import load_fleet; "
                "f = load_fleet(Path('mine/fleet.yaml')); print(sorted(f.placement.hosts_of('v2ray')))"], cwd=tmp_path)
    assert load.returncode == 0, load.stderr[-2000:]
    assert load.stdout.strip() == "['127.0.0.2', 'web-1']"
    bad = run([archfleet, "init", "other", "--hosts", "web 1=10.0.0.1", "--registry", "r:5000"], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--hosts" in bad.stderr
    assert not (tmp_path / "other").exists()


def test_own_hosts_flow_from_init_to_a_page_through_each_proxy(installed: Path, tmp_path: Path,
                                                               lab: LabState) -> None:
    """The README's "your own hosts" path, with the lab's amd64 and arm64 hosts standing in for yours and the lab
    registry for yours (its login and CA passed to init as flags): init, check, hosts bootstrap, images build,
    sync, verify, service info; then each printed client config carries a page fetch through that host's proxy.
    Each step's time is printed (`pytest -s` shows the transcript)."""
    from archfleet.lab.v2ray_client import _RecordingHandler as PageHandler  # the demo's page server
    from archfleet.lab.v2ray_client import free_port

    amd64, arm64 = lab.hosts_of("amd64")[0], lab.hosts_of("arm64")[0]
    archfleet = str(installed / "archfleet")
    password = tmp_path / "registry-password"  # the user's own copy of the registry login, chmod 600
    password.write_text(Path(lab.registry.password_file).read_text())
    password.chmod(0o600)
    timings: list[tuple[str, float]] = []

    def step(name: str, argv: list[str], cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = run([archfleet, *argv], cwd=cwd, timeout=timeout)
        timings.append((f"archfleet {' '.join(argv)}", time.monotonic() - started))
        print(f"\n$ archfleet {' '.join(argv)}   # {timings[-1][1]:.1f} s, exit {result.returncode}\n"
              f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
        return result

    step("init", ["init", "mine", "--hosts", f"own-amd64=root@{amd64.address},own-arm64=root@{arm64.address}",
                  "--registry", lab.registry.address, "--namespace", "archfleet", "--registry-user",
                  lab.registry.username, "--password-file", str(password), "--ca-file", lab.registry.ca_cert],
         cwd=tmp_path)
    mine = tmp_path / "mine"
    fleet = mine / "fleet.yaml"
    text = fleet.read_text()
    # What a user of these hosts adapts: the SSH key, and the Debian base (Docker Hub is out of reach here: the
    # registry's own Debian base, as the lab's fleet builds v2ray, so the published image is the same input)
    text = text.replace("  # key_file: ~/.ssh/id_ed25519", f"  key_file: {lab.ssh_key}")
    # hosts new to this user: no key recorded yet (this machine's own record may hold older lab hosts' keys)
    text = text.replace("  # known_hosts: ~/.config/archfleet/known_hosts",
                        f"  known_hosts: {tmp_path / 'known_hosts'}")
    text = text.replace("    platforms: [linux/amd64, linux/arm64]\n",
                        "    platforms: [linux/amd64, linux/arm64]\n"
                        "    build_args: {BASE_IMAGE: '{registry}/archfleet/debian:bookworm'}\n", 1)
    fleet.write_text(text)

    checked = step("check", ["check"], cwd=mine)
    assert "nothing was contacted" in checked.stdout
    step("bootstrap", ["hosts", "bootstrap"], cwd=mine, timeout=1800)
    built = step("images build", ["images", "build"], cwd=mine, timeout=3600)
    assert "builder for linux/arm64: natively on own-arm64" in built.stderr, built.stderr[-3000:]
    step("sync", ["sync"], cwd=mine)
    step("verify", ["verify"], cwd=mine)
    info = step("service info", ["service", "info", "v2ray", "--json"], cwd=mine)
    hosts = json.loads(info.stdout)["hosts"]
    assert [h["host"] for h in hosts] == ["own-amd64", "own-arm64"]
    text_info = step("service info (text)", ["service", "info", "v2ray", "--limit", "own-arm64"], cwd=mine)
    assert text_info.stdout.count("vmess://") == 1

    page = http.server.ThreadingHTTPServer((lab.gateway, 0), PageHandler)
    page.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=page.serve_forever, daemon=True).start()
    try:
        for host in hosts:
            config = host["client_config"]
            socks = free_port()
            config["inbounds"][0]["port"] = socks  # the printed config, on a port free here
            path = tmp_path / f"client-{host['host']}.json"
            path.touch(mode=0o600)
            path.write_text(json.dumps(config))
            body = fetch_with_client(path, socks, f"http://{lab.gateway}:{page.server_port}/")
            assert body == PageHandler.body.decode(), (host["host"], body)
            seen = page.seen  # type: ignore[attr-defined]
            assert seen[-1] == host["address"], (host, seen)  # fetched by that host's proxy
    finally:
        page.shutdown()
    print("\n".join(f"{seconds:7.1f} s  {command}" for command, seconds in timings))

