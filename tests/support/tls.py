"""Test PKI made with the `openssl` CLI: a CA, a server certificate for 127.0.0.1, a client
certificate, and bcrypt hashes; plus a web config file writer."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path  # a CA that signed nothing we trust
    other_client_cert: Path
    other_client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{res.stderr}")


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    key, cert = d / f"{name}.key", d / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=d)
    return cert, key


def _leaf(d: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    key, csr, cert, extfile = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt", d / f"{name}.ext"
    extfile.write_text(ext)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
             "-out", str(csr), "-subj", f"/CN={name}", cwd=d)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-out", str(cert), "-days", "2", "-extfile", str(extfile), cwd=d)
    return cert, key


def make_pki(directory: Path) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI (Debian package 'openssl') is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "test-ca")
    server = _leaf(directory, "server", ca, "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                            "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n")
    client = _leaf(directory, "client", ca, "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n")
    other_ca = _ca(directory, "other-ca")
    other_client = _leaf(directory, "other-client", other_ca,
                         "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n")
    return Pki(ca[0], ca[1], server[0], server[1], client[0], client[1], other_ca[0], other_client[0],
                   other_client[1])


def bcrypt_hash(password: str, rounds: int = 4) -> str:
    """A `$2y$` hash as htpasswd writes it (cost 4 keeps tests fast; production uses 10+)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode().replace("$2b$", "$2y$", 1)


def server_leaf(directory: Path, pki: Pki, name: str) -> tuple[Path, Path]:
    """Another server certificate for 127.0.0.1 from the same CA, with CN `name` and a serial of its own:
    what a renewal puts in place of the old one."""
    directory.mkdir(parents=True, exist_ok=True)
    return _leaf(directory, name, (pki.ca_cert, pki.ca_key),
                 "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n")
