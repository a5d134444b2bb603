"""The lab's certificate authority and the registry's TLS certificate (openssl, EC P-256)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from archfleet.lab.state import LabPaths
from archfleet.run import run, say


def cert_covers_ip(cert: Path, ip: str) -> bool:
    result = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and f"IP Address:{ip}" in result.stdout


def ensure_pki(paths: LabPaths, registry_ip: str) -> None:
    """A CA (kept across `lab up`s) and a registry certificate valid for ``registry_ip``."""
    paths.ca_cert.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    old_umask = os.umask(0o077)
    try:
        if not (paths.ca_cert.exists() and paths.ca_key.exists()):
            say("creating the lab CA")
            run([
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", str(paths.ca_key), "-out", str(paths.ca_cert), "-days", "3650",
                "-subj", "/CN=archfleet lab CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ])
        if paths.registry_cert.exists() and cert_covers_ip(paths.registry_cert, registry_ip):
            return
        say(f"issuing the registry certificate for {registry_ip}")
        with tempfile.TemporaryDirectory() as tmp:
            csr = Path(tmp) / "registry.csr"
            ext = Path(tmp) / "ext.cnf"
            ext.write_text(
                f"subjectAltName=IP:{registry_ip},IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
            )
            run([
                "openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(paths.registry_key), "-out", str(csr), "-subj", "/CN=archfleet lab registry",
            ])
            run([
                "openssl", "x509", "-req", "-in", str(csr), "-CA", str(paths.ca_cert),
                "-CAkey", str(paths.ca_key), "-CAcreateserial", "-days", "825",
                "-out", str(paths.registry_cert), "-extfile", str(ext),
            ])
    finally:
        os.umask(old_umask)
    # The CA certificate is public; hosts and docker read it.
    paths.ca_cert.chmod(0o644)
