"""A real OpenID provider on 127.0.0.1 for relying-party tests (test code only).

`OidcProvider` starts `tests/oidc_provider/provider.mjs` (npm `oidc-provider` v9, certified) in a
node process, one per flavour or Microsoft tenant set, and drives its test-only admin endpoints:

    config = ProviderConfig(flavour="google", clients=[OidcClient("ocis", "s3cret", (redirect,))],
                            accounts={"alice": {"email": "alice@example.com", "name": "Alice"}})
    async with OidcProvider(config) as provider:
        env = provider.info.env("GOOGLE")          # OIDC_GOOGLE_ISSUER / _CLIENT_ID / _SECRET
        # the provider's authorization URL (the Location of the RP's /auth/login/...) in, the
        # redirect back to the RP (code + state, or error) out, NOT requested:
        back = await authorize(real_http_client, provider_authorize_url, "alice")
        await provider.sabotage("wrong_nonce")    # the NEXT token response carries a bad ID token
        await provider.set_claims("alice", {"email": "new@example.com"})
        await provider.rotate_key()               # new kid signs; the old stays published
        await provider.jwks_fetches()             # how often the key set was fetched

A provider is cheap to keep for a whole module (`start_sync()` / `stop_sync()` in a sync
fixture) with `await provider.reset()` before each test: sabotage, claims, keys and counters
go back to the configuration.

Install step: `npm ci --omit=dev --prefix tests/oidc_provider` (node must be on PATH).
The node process exits when the Python process that started it goes away (stdin closes), when
`stop()` runs, or after `max_lifetime_s`, whichever comes first.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import hashlib
import hmac
import html
import json
import os
import queue
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
INSTALL_HINT = "npm ci --omit=dev --prefix tests/oidc_provider"
CONSUMERS_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
COOKIE_PREFIX = "_oidctest_"
ANY_PASSWORD = "any-password"  # the dev login form takes any password

Flavour = Literal["generic", "google", "microsoft", "linkedin"]
AuthMethod = Literal["client_secret_basic", "client_secret_post"]
SabotageMode = Literal[
    "wrong_nonce",
    "missing_nonce",
    "aud_other",
    "aud_list_without_us",
    "azp_other",
    "wrong_iss",
    "iss_without_scheme",
    "ms_iss_tid_mismatch",
    "ms_tenantid_literal",
    "ms_v1_issuer",
    "alg_none",
    "hs256_public_pem",
    "hs256_public_der",
    "forged_signature",
    "embedded_jwk",
    "jku_header",
    "x5u_header",
    "crit_unknown",
    "expired",
    "oversized",
    "unknown_kid",
    "override_claims",
]
SABOTAGE_MODES: tuple[SabotageMode, ...] = SabotageMode.__args__  # type: ignore[attr-defined]


class OidcHarnessError(RuntimeError):
    """The test provider could not be installed, started or driven."""


# ------------------------------------------------------------------------------------ JOSE bits


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url_uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def _uint(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """(header, payload, signature) of a compact JWS, NOT verified."""
    header, payload, signature = token.split(".")
    return (
        json.loads(b64url_decode(header)),
        json.loads(b64url_decode(payload)),
        b64url_decode(signature),
    )


def rsa_public_key_from_jwk(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(_uint(jwk["e"]), _uint(jwk["n"])).public_key()


@dataclass(frozen=True)
class RsaKey:
    """An RSA signing key with its `kid`: the provider's, or an attacker's."""

    private_key: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def generate(cls, kid: str | None = None) -> RsaKey:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(private_key, kid or cls.thumbprint(private_key.public_key()))

    @staticmethod
    def thumbprint(public_key: rsa.RSAPublicKey) -> str:
        """The RFC 7638 JWK thumbprint."""
        numbers = public_key.public_numbers()
        canonical = json.dumps(
            {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)},
            separators=(",", ":"),
            sort_keys=True,
        )
        return b64url(hashlib.sha256(canonical.encode()).digest())

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        numbers = self.public_key.public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }

    def private_jwk(self) -> dict[str, str]:
        numbers = self.private_key.private_numbers()
        return {
            **self.public_jwk(),
            "d": _b64url_uint(numbers.d),
            "p": _b64url_uint(numbers.p),
            "q": _b64url_uint(numbers.q),
            "dp": _b64url_uint(numbers.dmp1),
            "dq": _b64url_uint(numbers.dmq1),
            "qi": _b64url_uint(numbers.iqmp),
        }

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_der(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def self_signed_cert_pem(self, common_name: str = "attacker.invalid") -> str:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.private_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def sign_rs256(self, data: bytes) -> bytes:
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def mint_jwt(
    claims: Mapping[str, Any],
    key: RsaKey | bytes | None,
    *,
    alg: Literal["RS256", "HS256", "none"] = "RS256",
    headers: Mapping[str, Any] | None = None,
) -> str:
    """A compact JWS built by hand: RS256 with an RsaKey, HS256 with bytes, or `alg: none`.

    `headers` are merged over {"alg", "typ": "JWT", "kid"}; a header set to None is left out.
    """
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if isinstance(key, RsaKey):
        header["kid"] = key.kid
    for name, value in (headers or {}).items():
        if value is None:
            header.pop(name, None)
        else:
            header[name] = value
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    ).encode("ascii")
    if alg == "none":
        signature = b""
    elif alg == "HS256":
        if not isinstance(key, bytes):
            raise TypeError("HS256 needs a bytes key")
        signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    else:
        if not isinstance(key, RsaKey):
            raise TypeError("RS256 needs an RsaKey")
        signature = key.sign_rs256(signing_input)
    return signing_input.decode("ascii") + "." + b64url(signature)


# ------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class OidcClient:
    """A relying-party client registered at the provider."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"

    @property
    def redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }


def _default_clients() -> list[OidcClient]:
    return [
        OidcClient(
            "ocis-test-client",
            secrets.token_urlsafe(24),
            ("http://127.0.0.1:8000/auth/callback/test",),
        )
    ]


@dataclass
class ProviderConfig:
    """What one provider process serves.

    flavour: "google" adds email_verified=true where an email is given; "microsoft" serves one
    issuer per tenant (ORIGIN/{tid}/v2.0) plus /common, /organizations and /consumers, and adds
    tid (default: the first tenant), xms_edov=true where an email is given, ver="2.0" and
    preferred_username; "linkedin" serves the issuer ORIGIN/oauth, adds email_verified=true and
    does not require PKCE unless pkce_required=True; "generic" adds nothing.
    accounts: account id (the `sub`) -> claims; a claim set to None is left out of the tokens
    (e.g. {"xms_edov": None}).
    """

    flavour: Flavour = "generic"
    clients: list[OidcClient] = field(default_factory=_default_clients)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    tenants: list[str] = field(default_factory=list)
    pkce_required: bool | None = None
    issuer_path: str | None = None
    issuer: str | None = None
    extra_claims: list[str] = field(default_factory=list)
    signing_key: RsaKey | None = None
    port: int = 0
    id_token_ttl: int = 3600
    max_lifetime_s: int = 3600
    startup_timeout: float = 20.0

    def to_json(self, signing_key: RsaKey, attacker: RsaKey, attacker_cert: str) -> dict[str, Any]:
        pkce = self.pkce_required
        if pkce is None:
            pkce = self.flavour != "linkedin"
        body: dict[str, Any] = {
            "port": self.port,
            "flavour": self.flavour,
            "tenants": list(self.tenants),
            "pkce_required": pkce,
            "clients": [client.to_json() for client in self.clients],
            "accounts": [{"id": key, "claims": value} for key, value in self.accounts.items()],
            "extra_claims": list(self.extra_claims),
            "jwks": {"keys": [signing_key.private_jwk()]},
            "attacker": {"jwk": attacker.private_jwk(), "cert_pem": attacker_cert},
            "id_token_ttl": self.id_token_ttl,
            "max_lifetime_s": self.max_lifetime_s,
            "watch_stdin": True,
        }
        if self.issuer_path is not None:
            body["issuer_path"] = self.issuer_path
        if self.issuer is not None:
            body["issuer"] = self.issuer
        return body


@dataclass(frozen=True)
class Mount:
    """One issuer (or Microsoft alias such as `common`) served by the process."""

    kind: Literal["issuer", "tenant", "alias"]
    tenant: str | None
    prefix: str
    issuer: str
    discovery_url: str


@dataclass(frozen=True)
class ProviderInfo:
    """Where a started provider is and how to talk to it."""

    origin: str
    flavour: Flavour
    clients: tuple[OidcClient, ...]
    tenants: tuple[str, ...]
    mounts: tuple[Mount, ...]

    @property
    def issuer(self) -> str:
        """The issuer (Microsoft: the first tenant's)."""
        return self.mounts[0].issuer

    @property
    def discovery_url(self) -> str:
        return self.mounts[0].discovery_url

    @property
    def client(self) -> OidcClient:
        return self.clients[0]

    @property
    def client_id(self) -> str:
        return self.clients[0].client_id

    @property
    def client_secret(self) -> str:
        return self.clients[0].client_secret

    @property
    def redirect_uri(self) -> str:
        return self.clients[0].redirect_uri

    def mount(self, tenant: str) -> Mount:
        """Microsoft: a tenant id, or "common", "organizations", "consumers"."""
        for mount in self.mounts:
            if mount.tenant == tenant:
                return mount
        raise KeyError(tenant)

    def issuer_for(self, tenant: str) -> str:
        """The issuer a token of this tenant carries (never the {tenantid} template)."""
        if tenant in ("common", "organizations"):
            raise KeyError(f"{tenant} has no issuer of its own; tokens carry the user's tenant")
        if tenant == "consumers":
            tenant = CONSUMERS_TENANT
        return f"{self.origin}/{tenant}/v2.0"

    def discovery_url_for(self, tenant: str) -> str:
        return self.mount(tenant).discovery_url

    def env(self, name: str, *, issuer: str | None = None, client: int = 0) -> dict[str, str]:
        """OIDC_<NAME>_ISSUER / _CLIENT_ID / _CLIENT_SECRET for the relying party's settings."""
        chosen = self.clients[client]
        prefix = f"OIDC_{name.upper()}_"
        return {
            prefix + "ISSUER": issuer or self.issuer,
            prefix + "CLIENT_ID": chosen.client_id,
            prefix + "CLIENT_SECRET": chosen.client_secret,
        }


# ------------------------------------------------------------------------------ the process


class _NodeProcess:
    """node provider.mjs with its output drained by threads (independent of any event loop)."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: collections.deque[str] = collections.deque(maxlen=200)
        self.process = subprocess.Popen(  # noqa: S603 - a fixed argv of our own
            argv,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.threads = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _pump_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line.rstrip("\n"))

    def stderr_text(self) -> str:
        return "\n".join(self.stderr)

    def wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OidcHarnessError(
                    f"the OIDC test provider did not print LISTENING within {timeout:.0f} s;"
                    f" stdout: {seen!r}; stderr:\n{self.stderr_text()}"
                )
            try:
                line = self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self.process.wait(timeout=5)
                for thread in self.threads:
                    thread.join(timeout=2)
                raise OidcHarnessError(
                    f"the OIDC test provider exited with {self.process.returncode} before"
                    f" listening; stderr:\n{self.stderr_text()}"
                )
            if line.startswith("LISTENING "):
                return line.split(" ", 1)[1].strip()
            seen.append(line)

    def stop(self) -> None:
        process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process.stdin is not None:
            process.stdin.close()
        # The pipes reach EOF once node is gone; let the readers finish before closing them.
        for thread in self.threads:
            thread.join(timeout=5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@functools.cache
def _tls() -> ssl.SSLContext:
    # The admin calls are plain http on loopback; one shared context spares httpx building a
    # new one (~50 ms) for every short-lived client.
    return ssl.create_default_context()


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise OidcHarnessError("`node` (Node.js 20+) must be on PATH for the OIDC test provider")
    return node


def check_installed(provider_dir: Path = PROVIDER_DIR) -> None:
    for package in ("oidc-provider", "jose"):
        if not (provider_dir / "node_modules" / package / "package.json").is_file():
            raise OidcHarnessError(
                f"{provider_dir / 'node_modules' / package} is missing: run `{INSTALL_HINT}`"
            )


# ------------------------------------------------------------------------------ the harness


@dataclass(frozen=True)
class AuthorizationRequest:
    """An authorization URL with the state, nonce and PKCE verifier that went into it."""

    url: str
    state: str
    nonce: str
    code_verifier: str | None


class OidcProvider:
    """One node process serving one flavour (Microsoft: several tenants) on 127.0.0.1.

    Use as `async with OidcProvider(config) as provider:` or call `start()`/`stop()` (also
    `start_sync()`/`stop_sync()` for session- or module-scoped sync fixtures; call `reset()`
    between tests that share one).
    """

    def __init__(
        self, config: ProviderConfig | None = None, *, provider_dir: Path = PROVIDER_DIR
    ) -> None:
        self.config = config or ProviderConfig()
        self.provider_dir = provider_dir
        self.initial_key = self.config.signing_key or RsaKey.generate()
        self.signing_key = self.initial_key
        self.keys: list[RsaKey] = [self.initial_key]
        self.attacker_key = RsaKey.generate(kid="attacker-" + secrets.token_hex(4))
        self.attacker_cert_pem = self.attacker_key.self_signed_cert_pem()
        self.startup_seconds: float | None = None
        self._process: _NodeProcess | None = None
        self._info: ProviderInfo | None = None

    # -- lifecycle

    @property
    def info(self) -> ProviderInfo:
        if self._info is None:
            raise OidcHarnessError("the provider is not started")
        return self._info

    @property
    def origin(self) -> str:
        return self.info.origin

    @property
    def issuer(self) -> str:
        return self.info.issuer

    @property
    def discovery_url(self) -> str:
        return self.info.discovery_url

    @property
    def client(self) -> OidcClient:
        return self.info.client

    @property
    def stderr(self) -> str:
        return self._process.stderr_text() if self._process else ""

    def start_sync(self) -> ProviderInfo:
        if self._process is not None:
            raise OidcHarnessError("already started")
        check_installed(self.provider_dir)
        node = node_executable()
        body = self.config.to_json(self.initial_key, self.attacker_key, self.attacker_cert_pem)
        began = time.monotonic()
        handle, path = tempfile.mkstemp(prefix="oidc-provider-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(body, file)
            self._process = _NodeProcess(
                [node, str(self.provider_dir / "provider.mjs"), "--config", path],
                self.provider_dir,
            )
            try:
                origin = self._process.wait_listening(self.config.startup_timeout)
                raw = httpx.get(f"{origin}/__test/info", timeout=10, verify=_tls()).json()
            except BaseException:
                self._process.stop()
                self._process = None
                raise
        finally:
            os.unlink(path)
        self.startup_seconds = time.monotonic() - began
        self._info = ProviderInfo(
            origin=raw["origin"],
            flavour=raw["flavour"],
            clients=tuple(self.config.clients),
            tenants=tuple(raw["tenants"]),
            mounts=tuple(
                Mount(m["kind"], m["tenant"], m["prefix"], m["issuer"], m["discovery_url"])
                for m in raw["mounts"]
            ),
        )
        return self._info

    def stop_sync(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    @property
    def returncode(self) -> int | None:
        return self._process.process.poll() if self._process else None

    async def start(self) -> ProviderInfo:
        return await asyncio.to_thread(self.start_sync)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- admin endpoints

    async def _admin(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(timeout=15, verify=_tls()) as http:
            response = await http.request(method, f"{self.origin}/__test/{path}", json=body)
        if response.status_code != 200:
            raise OidcHarnessError(
                f"{method} /__test/{path}: {response.status_code} {response.text}"
            )
        return response.json()

    async def sabotage(self, mode: SabotageMode, **params: Any) -> None:
        """Make the NEXT token-endpoint response (any client, any mount) carry a bad ID token.

        Params: nonce (wrong_nonce), aud (aud_other / aud_list_without_us / azp_other: the other
        client id), iss (wrong_iss), tenant (ms_iss_tid_mismatch), kid (embedded_jwk,
        unknown_kid), jku / x5u (the URL put in the header), crit (the unknown header name),
        seconds_ago (expired, default 3600), size (oversized, default 65536), claims
        (override_claims and forged_signature: name -> value, None removes), pem_type
        (hs256_public_pem: "spki" default or "pkcs1").
        """
        await self._admin("POST", "sabotage", {"mode": mode, "params": params})

    async def clear_sabotage(self) -> None:
        await self._admin("POST", "sabotage", {"mode": None})

    async def sabotage_log(self) -> dict[str, Any]:
        """{"pending": mode or None, "applied": [{mode, mount, original_id_token}]}."""
        result: dict[str, Any] = await self._admin("GET", "sabotage")
        return result

    async def set_claims(
        self, account_id: str, claims: Mapping[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """Change (or create) an account at runtime; returns the claims its tokens will carry."""
        result = await self._admin(
            "POST",
            "claims",
            {"account_id": account_id, "claims": dict(claims), "replace": replace},
        )
        claims_now: dict[str, Any] = result["claims"]
        return claims_now

    async def rotate_key(self, *, keep_old: bool = True, key: RsaKey | None = None) -> RsaKey:
        """Sign with a new key (new kid) from now on; the old one stays published unless
        keep_old=False. Returns the new key (also `self.signing_key`)."""
        new = key or RsaKey.generate()
        await self._admin("POST", "rotate", {"jwk": new.private_jwk(), "keep_old": keep_old})
        self.signing_key = new
        self.keys = [new, *self.keys] if keep_old else [new]
        return new

    async def reset(self) -> None:
        """Back to the configured accounts and key; no pending sabotage; counters zeroed."""
        await self._admin("POST", "reset")
        self.signing_key = self.initial_key
        self.keys = [self.initial_key]

    async def stats(self) -> dict[str, int]:
        """Requests served per path (admin calls excluded) since start or the last reset."""
        result: dict[str, int] = (await self._admin("GET", "stats"))["requests"]
        return result

    async def reset_stats(self) -> None:
        await self._admin("POST", "stats/reset")

    async def jwks_fetches(self) -> int:
        return sum(count for path, count in (await self.stats()).items() if path.endswith("/jwks"))

    # -- flows

    def authorization_request(
        self,
        *,
        client: OidcClient | None = None,
        tenant: str | None = None,
        scope: str = "openid email profile",
        pkce: bool = True,
        redirect_uri: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> AuthorizationRequest:
        """A code-flow authorization URL as a relying party would build it (for harness tests
        and for tests that need to talk to the provider directly)."""
        chosen = client or self.client
        base = self.info.mount(tenant).prefix if tenant else self.info.mounts[0].prefix
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        params = {
            "response_type": "code",
            "client_id": chosen.client_id,
            "redirect_uri": redirect_uri or chosen.redirect_uri,
            "scope": scope,
            "state": state,
            "nonce": nonce,
        }
        verifier = None
        if pkce:
            verifier = secrets.token_urlsafe(48)
            params["code_challenge"] = b64url(hashlib.sha256(verifier.encode()).digest())
            params["code_challenge_method"] = "S256"
        params.update(extra or {})
        url = f"{self.origin}{base}/auth?{urlencode(params)}"
        return AuthorizationRequest(url, state, nonce, verifier)

    async def exchange_code(
        self,
        http: httpx.AsyncClient,
        code: str,
        *,
        code_verifier: str | None,
        client: OidcClient | None = None,
        tenant: str | None = None,
        redirect_uri: str | None = None,
    ) -> httpx.Response:
        """POST the token endpoint as the client would (its configured auth method)."""
        chosen = client or self.client
        base = self.info.mount(tenant).prefix if tenant else self.info.mounts[0].prefix
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri or chosen.redirect_uri,
        }
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        url = f"{self.origin}{base}/token"
        if chosen.token_endpoint_auth_method == "client_secret_post":
            form |= {"client_id": chosen.client_id, "client_secret": chosen.client_secret}
            return await http.post(url, data=form)
        auth = httpx.BasicAuth(chosen.client_id, chosen.client_secret)
        return await http.post(url, data=form, auth=auth)

    async def authorize(self, http: httpx.AsyncClient, authorize_url: str, account_id: str) -> str:
        return await authorize(http, authorize_url, account_id)

    def mint_id_token(
        self,
        claims: Mapping[str, Any],
        *,
        key: RsaKey | bytes | None = None,
        alg: Literal["RS256", "HS256", "none"] = "RS256",
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """A token signed in Python; by default with the provider's current signing key."""
        return mint_jwt(
            claims, key if key is not None else self.signing_key, alg=alg, headers=headers
        )

    def id_token_claims(
        self,
        sub: str,
        *,
        nonce: str | None,
        client: OidcClient | None = None,
        issuer: str | None = None,
        lifetime: int = 300,
        **claims: Any,
    ) -> dict[str, Any]:
        """The registered claims a genuine ID token of this provider carries, plus `claims`."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "sub": sub,
            "aud": (client or self.client).client_id,
            "iat": now,
            "exp": now + lifetime,
            "auth_time": now,
        }
        if nonce is not None:
            body["nonce"] = nonce
        body.update(claims)
        return body


# ------------------------------------------------------------------------------ browser stand-in

_FORM = re.compile(r'<form[^>]*\baction="([^"]*)"[^>]*\bmethod="post"', re.IGNORECASE)
_PROMPT = re.compile(r'name="prompt"\s+value="([a-z]+)"')


class AuthorizeError(OidcHarnessError):
    """The provider answered the browser stand-in with something other than a form or redirect."""

    def __init__(self, message: str, response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def forget_provider_cookies(http: httpx.AsyncClient) -> None:
    """Drop every test provider's cookies from the client's jar (their names are prefixed)."""
    jar = http.cookies.jar
    for cookie in list(jar):
        if cookie.name.startswith(COOKIE_PREFIX):
            jar.clear(cookie.domain, cookie.path, cookie.name)


async def authorize(
    http: httpx.AsyncClient,
    authorize_url: str,
    account_id: str,
    *,
    password: str = ANY_PASSWORD,
    max_steps: int = 12,
) -> str:
    """Play the browser: follow the provider's redirects, submit its dev login form (login =
    account_id, any password) and consent form, and return the first redirect that leaves the
    provider's origin (the relying party's redirect_uri with code and state, or with an error)
    WITHOUT requesting it. Every flow starts without provider cookies (a fresh login), and the
    provider's cookies are dropped from `http` again afterwards.
    """
    provider = _origin(authorize_url)
    forget_provider_cookies(http)
    try:
        response = await http.get(authorize_url, follow_redirects=False)
        for _ in range(max_steps):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if _origin(location) != provider:
                    return location
                response = await http.get(location, follow_redirects=False)
                continue
            form = _FORM.search(response.text) if response.status_code == 200 else None
            prompt = _PROMPT.search(response.text) if form else None
            if form is None or prompt is None:
                raise AuthorizeError(
                    f"the provider answered {response.status_code} at {response.url}:"
                    f" {response.text[:800]}",
                    response,
                )
            action = urljoin(str(response.url), html.unescape(form.group(1)))
            data = {"prompt": prompt.group(1)}
            if prompt.group(1) == "login":
                data |= {"login": account_id, "password": password}
            response = await http.post(action, data=data, follow_redirects=False)
        raise AuthorizeError(f"no redirect back to the relying party after {max_steps} steps")
    finally:
        forget_provider_cookies(http)


def callback_params(redirect: str) -> dict[str, str]:
    """The query parameters of a redirect back to the relying party (code, state, iss, error)."""
    return {key: values[0] for key, values in parse_qs(urlsplit(redirect).query).items()}
