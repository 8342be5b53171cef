"""TLS and security headers (P18): `serve` terminates TLS 1.2+, HSTS only over https, and the
no-sniff, referrer and framing headers on every answer."""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import settings as config
from tests.helpers import ROOT, run_cli, subprocess_environment
from tests.smtp_server import free_port
from tests.test_two_processes import _stop

pytestmark = pytest.mark.promise("P18")

HSTS = "max-age=63072000; includeSubDomains"
EVERY_ANSWER = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin",
    "content-security-policy": "frame-ancestors 'none'",
}
PROXY = "198.51.100.10"
STARTUP_SECONDS = 30
PRODUCTION = {
    "OCIS_ENV": "production",
    "OCIS_MASTER_KEY": base64.b64encode(b"m" * 32).decode(),
    "DATABASE_URL": "postgres://ocis@db.example.com:5432/ocis",
    "REDIS_URL": "redis://cache.example.com:6379/0",
    "SMTP_URL": "smtps://mail.example.com:465",
    "PUBLIC_URL": "https://support.example.com",
}


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def client_context(cert: Path, maximum: ssl.TLSVersion) -> ssl.SSLContext:
    """A client trusting our certificate, offering nothing above `maximum`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cert)
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = maximum
    # Lets this OpenSSL offer TLS 1.0/1.1 at all, so a refusal can only come from the server.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


@contextmanager
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`python server.py serve` over TLS on a free port; yield its base URL and certificate."""
    cert, key = self_signed(tmp_path)
    database = {"DATABASE_URL": f"sqlite://{tmp_path / 'tls.sqlite3'}"}
    migrated = run_cli("migrate", env=database)
    assert migrated.returncode == 0, migrated.stderr
    environment = subprocess_environment(
        **database,
        OCIS_TLS_CERT=str(cert),
        OCIS_TLS_KEY=str(key),
        HOST="127.0.0.1",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "serve.log"
    trust = ssl.create_default_context(cafile=str(cert))
    for _ in range(3):
        port = free_port()
        base = f"https://127.0.0.1:{port}"
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own server with fixed arguments
                [sys.executable, "server.py", "serve"],
                cwd=ROOT,
                env={**environment, "PORT": str(port)},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", verify=trust, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            _stop(process)
            if "address already in use" in log.read_text().lower():
                continue
            raise AssertionError("the server did not start:\n" + log.read_text())
        try:
            yield base, cert
        finally:
            _stop(process)
        return
    raise AssertionError("no free port for the server in three tries")


def handshake(port: int, context: ssl.SSLContext) -> str | None:
    """The protocol version the server agreed to."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version()


def permissive_handshake(cert: Path, key: Path, client: ssl.SSLContext) -> str | None:
    """The version `client` agrees with a server that still allows TLS 1.0 and 1.1."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    server.set_ciphers("DEFAULT:@SECLEVEL=0")
    server.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def accept() -> None:
            connection, _ = listener.accept()
            with contextlib.suppress(OSError), server.wrap_socket(connection, server_side=True):
                pass

        acceptor = threading.Thread(target=accept)
        acceptor.start()
        try:
            return handshake(listener.getsockname()[1], client)
        finally:
            acceptor.join(timeout=10)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_serve_terminates_tls_1_2_and_refuses_tls_1_1(tmp_path: Path) -> None:
    with tls_server(tmp_path) as (base, cert):
        key = cert.with_name("key.pem")
        port = int(base.rsplit(":", 1)[1])
        old_client = client_context(cert, ssl.TLSVersion.TLSv1_1)
        # This client does speak TLS 1.1 (to a server that allows it), so a refusal is OCIS's.
        assert permissive_handshake(cert, key, old_client) == "TLSv1.1"
        with pytest.raises(ssl.SSLError):
            handshake(port, old_client)
        assert handshake(port, client_context(cert, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
        context = client_context(cert, ssl.TLSVersion.TLSv1_2)
        answer = httpx.get(f"{base}/healthz", verify=context, timeout=10)
        assert answer.status_code == 200
        assert answer.headers["strict-transport-security"] == HSTS
        for name, value in EVERY_ANSWER.items():
            assert answer.headers[name] == value


async def boom(request: Request) -> Response:
    raise RuntimeError("unhandled")


@pytest.fixture
async def answers(app: Any) -> Any:
    """Answers of every kind from the app over plain http from a given peer."""
    app.router.routes.append(Route("/boom", boom))

    async def answer(
        kind: str, peer: str = "203.0.113.7", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 50000), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            if kind == "413":
                return await http.post("/graphql", content=b"x" * (1024 * 1024 + 1))
            path = {"ok": "/healthz", "404": "/no-such-page", "500": "/boom"}[kind]
            return await http.get(path, headers=headers or {})

    return answer


@pytest.mark.parametrize(
    ("kind", "status"), [("ok", 200), ("404", 404), ("413", 413), ("500", 500)]
)
async def test_every_answer_carries_the_security_headers(
    answers: Any, kind: str, status: int
) -> None:
    response = await answers(kind)
    assert response.status_code == status
    for name, value in EVERY_ANSWER.items():
        assert response.headers.get_list(name) == [value]
    assert "strict-transport-security" not in response.headers


@pytest.mark.parametrize(
    ("proxies", "peer", "forwarded_proto", "hsts"),
    [
        pytest.param("", "203.0.113.7", None, False, id="plain-http-no-proxy"),
        pytest.param("", "203.0.113.7", "https", False, id="no-proxy-declared"),
        pytest.param(PROXY, "203.0.113.7", "https", False, id="untrusted-peer-says-https"),
        pytest.param(PROXY, PROXY, "https", True, id="trusted-proxy-says-https"),
        pytest.param(PROXY, PROXY, "http", False, id="trusted-proxy-says-http"),
        pytest.param(PROXY, PROXY, "https, http", False, id="trusted-proxy-appended-http"),
        pytest.param(PROXY, PROXY, None, False, id="trusted-proxy-says-nothing"),
    ],
)
@pytest.mark.parametrize("kind", ["ok", "404"])
async def test_hsts_only_over_tls_or_from_a_trusted_proxy_that_says_https(
    app: Any,
    answers: Any,
    proxies: str,
    peer: str,
    forwarded_proto: str | None,
    hsts: bool,
    kind: str,
) -> None:
    trusted = tuple(ip_network(proxy) for proxy in proxies.split(",") if proxy)
    app.state.settings = replace(app.state.settings, trusted_proxies=trusted)
    headers = {"x-forwarded-proto": forwarded_proto} if forwarded_proto else {}
    response = await answers(kind, peer, headers)
    assert response.headers.get("strict-transport-security") == (HSTS if hsts else None)
    assert response.headers["x-content-type-options"] == "nosniff"


def test_production_refuses_to_start_without_tls_or_a_trusted_proxy(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigurationError, match="TLS is required"):
        config.from_environ(PRODUCTION)
    proxied = config.from_environ({**PRODUCTION, "OCIS_TRUSTED_PROXIES": "10.0.0.0/8"})
    assert not proxied.terminates_tls
    cert, key = self_signed(tmp_path)
    served = config.from_environ(
        {**PRODUCTION, "OCIS_TLS_CERT": str(cert), "OCIS_TLS_KEY": str(key)}
    )
    assert (served.tls_cert, served.tls_key) == (cert, key)
    assert served.terminates_tls
    refused = run_cli("serve", env=PRODUCTION)
    assert refused.returncode == 2
    assert "TLS is required" in refused.stderr


def test_tls_files_go_together_and_must_be_readable(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with pytest.raises(config.ConfigurationError, match="OCIS_TLS_KEY is unset"):
        config.from_environ({"OCIS_TLS_CERT": str(cert)})
    with pytest.raises(config.ConfigurationError, match="OCIS_TLS_CERT is unset"):
        config.from_environ({"OCIS_TLS_KEY": str(key)})
    missing = tmp_path / "missing.pem"
    with pytest.raises(config.ConfigurationError, match="OCIS_TLS_KEY: cannot read"):
        config.from_environ({"OCIS_TLS_CERT": str(cert), "OCIS_TLS_KEY": str(missing)})
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    result = run_cli("serve", env={"OCIS_TLS_CERT": str(cert), "OCIS_TLS_KEY": str(garbage)})
    assert result.returncode == 2
    assert "not a PEM certificate chain and its private key" in result.stderr
    assert "not a key" not in result.stderr
