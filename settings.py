"""One typed settings object, read from the environment (12-factor)."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent

# Published in the repository on purpose: it only ever protects development data.
DEVELOPMENT_MASTER_KEY = b"ocis-development-only-master-key"

Environment = Literal["development", "production"]


class ConfigurationError(RuntimeError):
    """The environment does not describe a configuration OCIS may run with."""


# The channels a ticket arrives by (models.enums.Channel; settings imports no project package).
CHANNELS = ("web", "mobile", "email")
DEFAULT_MAX_QUERY_COST = 12_000
DEFAULT_COST_BUDGET_PER_MINUTE = 120_000
# Open live-update sockets (/graphql over WebSocket) one client address may hold per process.
DEFAULT_LIVE_SOCKETS_PER_IP = 20
# PostgreSQL connections per process (its pool's most); N processes hold up to N times this.
DEFAULT_DB_POOL_SIZE = 10
TEAM_NAME_LENGTH = 100

# How long each category of personal data is kept, in days, before a retention run deletes it
# (privacy/retention.py, whose table names these same categories; the README says why each).
# Each is set by OCIS_RETENTION_<CATEGORY>_DAYS (upper case).
RETENTION_DAYS: Mapping[str, int] = {
    "sign_ins": 90,
    "account_tokens": 30,
    "invitations": 90,
    "notices": 365,
    "exports": 14,
    "closed_tickets": 1095,
    "walk_in_requesters": 30,
    "privacy_requests": 1095,
    "erased_account_consents": 1095,
    "visitor_consents": 1095,
    "jobs": 30,
    "audit_trail": 730,
}
# The longest period accepted: a typo of a few digits more should not keep data for ever.
MAX_RETENTION_DAYS = 36_500
DEFAULT_RETENTION_BATCH = 500


@dataclass(frozen=True, slots=True)
class Routing:
    """Which team a new ticket joins, by team name: its channel's, else the default team."""

    by_channel: Mapping[str, str] = field(default_factory=dict)
    default_team: str | None = None

    def teams_for(self, channel: str) -> tuple[str, ...]:
        """The team names to try for a ticket of this channel, in order; empty: not configured."""
        names = (self.by_channel.get(channel), self.default_team)
        return tuple(dict.fromkeys(name for name in names if name))


@dataclass(frozen=True, slots=True)
class Settings:
    env: Environment = "development"
    database_url: str = f"sqlite://{ROOT / 'var' / 'ocis.sqlite3'}"
    redis_url: str | None = None
    # The most PostgreSQL connections one process keeps open (its asyncpg pool; SQLite has one).
    db_pool_size: int = DEFAULT_DB_POOL_SIZE
    public_url: str = "http://127.0.0.1:8000"
    master_key: bytes = DEVELOPMENT_MASTER_KEY
    # Master keys that wrapped data keys before the current one (rotate-keys re-wraps them).
    previous_master_keys: tuple[bytes, ...] = ()
    smtp_url: str | None = None
    # The From of every mail; empty: no-reply at the host of PUBLIC_URL.
    mail_from: str = ""
    # How often each process looks for notices whose mail is due (privacy/mail.py).
    mail_poll_seconds: float = 5.0
    # The mail transport as the processor registry first records it (resolvers/processors.py);
    # the privacy officer keeps it right afterwards. "EU": ISO 3166's reserved code for the Union.
    mail_processor_name: str = "Mail transport (SMTP relay)"
    mail_processor_country: str = "EU"
    # How often each process looks for notices owed to every user (privacy/fanout.py).
    fanout_poll_seconds: float = 5.0
    # Durable jobs (privacy/jobs.py): whether `serve` runs them too (the embedded default; in
    # production `worker` processes do), how often a runner looks, and how long a claim lasts
    # without a heartbeat (a dead worker's job is taken over after that).
    run_jobs_in_server: bool = True
    job_poll_seconds: float = 1.0
    job_lease_seconds: float = 60.0
    # Seconds a stopping runner lets the step in hand finish before handing its job back.
    job_stop_grace_seconds: float = 20.0
    # Modules registering more job kinds (development only: the tests' kinds).
    extra_job_modules: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    privacy_contact: str = "contact@ocis.app"
    session_ttl_seconds: int = 7 * 24 * 3600
    audit_reads: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    oidc: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Peers whose X-Forwarded-For is believed (auth/client_ip.py); empty: none.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    # Where audit checkpoints go without Redis (privacy/audit_checkpoints.py), else to Redis.
    audit_checkpoint_dir: Path = ROOT / "var" / "audit-checkpoints"
    # PEM certificate chain and private key: `serve` terminates TLS itself when both are set.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # The bearer token that `GET /metrics` answers to; unset: /metrics is off.
    metrics_token: str | None = None
    # Where `serve --workers N` makes each start's fresh multiprocess-metrics directory (cli.py);
    # unset: the system's temporary directory.
    metrics_dir: Path | None = None
    routing: Routing = field(default_factory=Routing)
    # The staff console's build (`make console`); missing: /console answers 503.
    console_dist: Path = ROOT / "console" / "dist"
    # GraphQL query cost (schema/cost.py): the most one request may cost, and how much one
    # caller (account, else IP) may spend per minute. The bench page costs 1,951; the costliest
    # document of the tests, 50 tickets with 50 messages each, 10,201; 100 x 100, 30,301.
    max_query_cost: int = DEFAULT_MAX_QUERY_COST
    cost_budget_per_minute: int = DEFAULT_COST_BUDGET_PER_MINUTE
    # The most live-update sockets one client address holds open in one process; past it a
    # new one is closed at once with 1013 (try again later). A browser tab needs one.
    live_sockets_per_ip: int = DEFAULT_LIVE_SOCKETS_PER_IP
    # Whether /graphql runs queries sent by GET (never mutations); unset: only outside
    # production, so a production Settings built without the environment is safe too.
    graphql_get: bool | None = None
    # Trusted documents: only documents registered from a manifest (`register-documents`) run,
    # by hash or by their exact text, and no client registers any automatically; staff (the
    # console) are exempt (auth.policy.may_run_unregistered_documents). Off: any valid document
    # runs, and automatic persisted queries register themselves.
    trusted_documents_only: bool = False
    # Retention (P21, privacy/retention.py): days kept per category, rows deleted per
    # transaction, and how often `worker` processes run it (0: never on a schedule).
    retention_days: Mapping[str, int] = field(default_factory=lambda: dict(RETENTION_DAYS))
    retention_batch_size: int = DEFAULT_RETENTION_BATCH
    retention_every_hours: float = 24.0

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def queries_via_get(self) -> bool:
        return (not self.is_production) if self.graphql_get is None else self.graphql_get

    @property
    def terminates_tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def public_origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.public_url).scheme == "https"

    @property
    def allowed_origins(self) -> frozenset[str]:
        return frozenset({self.public_origin, *self.cors_origins})

    @property
    def sender(self) -> str:
        host = urlsplit(self.public_url).hostname or "localhost"
        return self.mail_from or f"OCIS <no-reply@{host}>"


SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")


def _country(raw: str) -> str:
    """OCIS_MAIL_PROCESSOR_COUNTRY: an ISO 3166-1 alpha-2 code such as IE or US."""
    code = raw.strip().upper() or Settings().mail_processor_country
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        raise ConfigurationError("OCIS_MAIL_PROCESSOR_COUNTRY must be a two-letter country code")
    return code


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def _smtp_url(raw: str | None, *, production: bool) -> str | None:
    """SMTP_URL: smtp:// (plain), smtp+starttls:// or smtps://, with optional user:password."""
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigurationError("SMTP_URL is not a URL") from None
    if parts.scheme not in SMTP_SCHEMES or not parts.hostname:
        raise ConfigurationError(
            "SMTP_URL must be smtp://, smtp+starttls:// or smtps://HOST[:PORT]"
        )
    if production and parts.scheme == "smtp" and parts.hostname not in LOOPBACK_HOSTS:
        raise ConfigurationError("SMTP_URL must use TLS (smtps or smtp+starttls) beyond loopback")
    return raw


def _master_key(raw: str | None) -> bytes:
    if not raw:
        return DEVELOPMENT_MASTER_KEY
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigurationError("OCIS_MASTER_KEY must be 32 random bytes, base64-encoded")
    return key


def _trusted_proxies(raw: str) -> tuple[IPv4Network | IPv6Network, ...]:
    networks: list[IPv4Network | IPv6Network] = []
    for entry in (item.strip() for item in raw.split(",")):
        if not entry:
            continue
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            raise ConfigurationError(
                f"OCIS_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR network"
            ) from None
    return tuple(networks)


def _tls_files(cert: str, key: str) -> tuple[Path | None, Path | None]:
    """OCIS_TLS_CERT and OCIS_TLS_KEY: both or neither, each a file this process can read."""
    if not cert and not key:
        return None, None
    if not cert or not key:
        missing = "OCIS_TLS_KEY" if cert else "OCIS_TLS_CERT"
        raise ConfigurationError(f"OCIS_TLS_CERT and OCIS_TLS_KEY go together: {missing} is unset")
    paths = (Path(cert), Path(key))
    for name, path in zip(("OCIS_TLS_CERT", "OCIS_TLS_KEY"), paths, strict=True):
        try:
            with path.open("rb") as pem:
                pem.read(1)
        except OSError as error:
            raise ConfigurationError(
                f"{name}: cannot read {path} ({error.strerror or 'unreadable'})"
            ) from None
    return paths


def _previous_master_keys(raw: str) -> tuple[bytes, ...]:
    keys = []
    for entry in (item.strip() for item in raw.split(",")):
        if not entry:
            continue
        try:
            key = base64.b64decode(entry, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ConfigurationError(
                "OCIS_PREVIOUS_MASTER_KEYS must be comma-separated 32-byte keys, base64-encoded"
            )
        keys.append(key)
    return tuple(keys)


# It names routes (/auth/login/NAME) and sign-in records ("oidc:NAME"), so it stays short.
PROVIDER_NAME = re.compile(r"[a-z][a-z0-9_]{0,19}")


def _oidc(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    providers: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if name.startswith("OIDC_") and name.endswith("_ISSUER"):
            provider = name.removeprefix("OIDC_").removesuffix("_ISSUER")
            if not PROVIDER_NAME.fullmatch(provider.lower()):
                raise ConfigurationError(
                    f"{name}: a provider name is a letter, then up to 19 letters, digits or _"
                )
            providers[provider.lower()] = {
                "issuer": value,
                "client_id": environ.get(f"OIDC_{provider}_CLIENT_ID", ""),
                "client_secret": environ.get(f"OIDC_{provider}_CLIENT_SECRET", ""),
                # Optional comma-separated tenant ids (Microsoft multi-tenant endpoints).
                "tenants": environ.get(f"OIDC_{provider}_TENANTS", ""),
            }
    return providers


def _team_name(raw: str, variable: str) -> str:
    name = raw.strip()
    if not name or len(name) > TEAM_NAME_LENGTH:
        raise ConfigurationError(f"{variable}: a team name is 1 to {TEAM_NAME_LENGTH} characters")
    return name


def _routing(routes: str, default_team: str) -> Routing:
    """OCIS_ROUTING ("email=Billing,web=Support") and OCIS_DEFAULT_TEAM, by team name."""
    by_channel: dict[str, str] = {}
    for entry in (item.strip() for item in routes.split(",")):
        if not entry:
            continue
        channel, equals, team = entry.partition("=")
        channel = channel.strip().lower()
        if not equals or channel not in CHANNELS:
            raise ConfigurationError(
                f"OCIS_ROUTING: {entry!r} is not CHANNEL=TEAM with CHANNEL one of "
                + ", ".join(CHANNELS)
            )
        if channel in by_channel:
            raise ConfigurationError(f"OCIS_ROUTING: the channel {channel} is routed twice")
        by_channel[channel] = _team_name(team, "OCIS_ROUTING")
    default = _team_name(default_team, "OCIS_DEFAULT_TEAM") if default_team.strip() else None
    return Routing(by_channel=by_channel, default_team=default)


def _served_url(host: str, port: int) -> str:
    """Where a browser on this machine reaches `serve` at HOST and PORT."""
    if host in ("0.0.0.0", "::"):  # noqa: S104 - every interface: this machine's is loopback
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _flag(raw: str | None, variable: str, default: bool) -> bool:
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise ConfigurationError(f"{variable} must be true or false")


def _seconds(raw: str | None, variable: str, default: float, least: float) -> float:
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not least <= value <= 86400:
        raise ConfigurationError(f"{variable} must be a number of seconds from {least:g}")
    return value


MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _modules(raw: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    for name in names:
        if not MODULE_NAME.fullmatch(name):
            raise ConfigurationError(f"OCIS_EXTRA_JOB_MODULES: {name!r} is not a module name")
    return names


MIN_METRICS_TOKEN = 24


def _metrics_token(raw: str) -> str | None:
    token = raw.strip()
    if not token:
        return None
    if len(token) < MIN_METRICS_TOKEN:
        raise ConfigurationError(
            f"OCIS_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN} characters"
            " (e.g. the output of `openssl rand -hex 32`)"
        )
    return token


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ConfigurationError(f"{name} must be a positive whole number")
    return int(raw)


def _retention_days(env: Mapping[str, str]) -> dict[str, int]:
    """OCIS_RETENTION_<CATEGORY>_DAYS, each a whole number of days from 1; unset: the default."""
    days = {}
    for category, default in RETENTION_DAYS.items():
        name = f"OCIS_RETENTION_{category.upper()}_DAYS"
        days[category] = _positive(env, name, default)
        if days[category] > MAX_RETENTION_DAYS:
            raise ConfigurationError(f"{name} must be at most {MAX_RETENTION_DAYS} days")
    unknown = sorted(
        name
        for name in env
        if name.startswith("OCIS_RETENTION_")
        and name.endswith("_DAYS")
        and name.removeprefix("OCIS_RETENTION_").removesuffix("_DAYS").lower() not in RETENTION_DAYS
    )
    if unknown:
        raise ConfigurationError(
            f"{unknown[0]}: no such retention category (one of "
            + ", ".join(category.upper() for category in RETENTION_DAYS)
            + ")"
        )
    return days


def _hours(raw: str | None, variable: str, default: float) -> float:
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 24 * 366:
        raise ConfigurationError(f"{variable} must be a number of hours from 0 (off) to 8784")
    return value


def _cors_origins(raw: str) -> tuple[str, ...]:
    """CORS_ORIGINS: origins (scheme://host[:port]) trusted with credentials; never `*`."""
    origins = []
    for entry in (item.strip().rstrip("/") for item in raw.split(",")):
        if not entry:
            continue
        parts = urlsplit(entry)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts[2:] != ("", "", ""):
            raise ConfigurationError(
                f"CORS_ORIGINS: {entry!r} is not an origin such as https://app.example.com"
            )
        origins.append(entry.lower())
    return tuple(origins)


def _unless_unset(raw: str | None, variable: str) -> bool | None:
    """A true/false setting whose default depends on others (unset or empty: None)."""
    return None if raw is None or not raw.strip() else _flag(raw, variable, False)


def from_environ(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the environment; production refuses development secrets."""
    env = os.environ if environ is None else environ
    mode = env.get("OCIS_ENV", "development")
    if mode not in ("development", "production"):
        raise ConfigurationError("OCIS_ENV must be 'development' or 'production'")
    defaults = Settings()
    host = env.get("HOST") or defaults.host
    port = int(env.get("PORT") or defaults.port)
    # In development the server's own origin follows where it listens, so any port just works.
    public_url = env.get("PUBLIC_URL") or (
        defaults.public_url if mode == "production" else _served_url(host, port)
    )
    tls_cert, tls_key = _tls_files(
        env.get("OCIS_TLS_CERT", "").strip(), env.get("OCIS_TLS_KEY", "").strip()
    )
    settings = Settings(
        env="production" if mode == "production" else "development",
        database_url=env.get("DATABASE_URL") or defaults.database_url,
        redis_url=env.get("REDIS_URL") or None,
        db_pool_size=_positive(env, "OCIS_DB_POOL_SIZE", defaults.db_pool_size),
        public_url=public_url.rstrip("/"),
        master_key=_master_key(env.get("OCIS_MASTER_KEY")),
        previous_master_keys=_previous_master_keys(env.get("OCIS_PREVIOUS_MASTER_KEYS", "")),
        run_jobs_in_server=_flag(
            env.get("OCIS_RUN_JOBS_IN_SERVER"), "OCIS_RUN_JOBS_IN_SERVER", mode != "production"
        ),
        job_poll_seconds=_seconds(
            env.get("OCIS_JOB_POLL_SECONDS"),
            "OCIS_JOB_POLL_SECONDS",
            defaults.job_poll_seconds,
            0.05,
        ),
        job_lease_seconds=_seconds(
            env.get("OCIS_JOB_LEASE_SECONDS"),
            "OCIS_JOB_LEASE_SECONDS",
            defaults.job_lease_seconds,
            1.0,
        ),
        job_stop_grace_seconds=_seconds(
            env.get("OCIS_JOB_STOP_GRACE_SECONDS"),
            "OCIS_JOB_STOP_GRACE_SECONDS",
            defaults.job_stop_grace_seconds,
            0.0,
        ),
        extra_job_modules=_modules(env.get("OCIS_EXTRA_JOB_MODULES", "")),
        smtp_url=_smtp_url(env.get("SMTP_URL"), production=mode == "production"),
        mail_from=env.get("OCIS_MAIL_FROM", "").strip(),
        mail_processor_name=env.get("OCIS_MAIL_PROCESSOR", "").strip()
        or defaults.mail_processor_name,
        mail_processor_country=_country(env.get("OCIS_MAIL_PROCESSOR_COUNTRY", "")),
        cors_origins=_cors_origins(env.get("CORS_ORIGINS", "")),
        privacy_contact=env.get("OCIS_PRIVACY_CONTACT") or defaults.privacy_contact,
        audit_reads=env.get("OCIS_AUDIT_READS", "true").lower() not in ("0", "false", "off"),
        host=host,
        port=port,
        oidc=_oidc(env),
        trusted_proxies=_trusted_proxies(env.get("OCIS_TRUSTED_PROXIES", "")),
        audit_checkpoint_dir=Path(
            env.get("OCIS_AUDIT_CHECKPOINT_DIR") or defaults.audit_checkpoint_dir
        ),
        tls_cert=tls_cert,
        tls_key=tls_key,
        metrics_token=_metrics_token(env.get("OCIS_METRICS_TOKEN", "")),
        metrics_dir=Path(env["OCIS_METRICS_DIR"]) if env.get("OCIS_METRICS_DIR") else None,
        routing=_routing(env.get("OCIS_ROUTING", ""), env.get("OCIS_DEFAULT_TEAM", "")),
        console_dist=Path(env.get("OCIS_CONSOLE_DIST") or defaults.console_dist),
        max_query_cost=_positive(env, "OCIS_MAX_QUERY_COST", defaults.max_query_cost),
        cost_budget_per_minute=_positive(
            env, "OCIS_COST_BUDGET_PER_MINUTE", defaults.cost_budget_per_minute
        ),
        live_sockets_per_ip=_positive(
            env, "OCIS_LIVE_SOCKETS_PER_IP", defaults.live_sockets_per_ip
        ),
        graphql_get=_unless_unset(env.get("OCIS_GRAPHQL_GET"), "OCIS_GRAPHQL_GET"),
        trusted_documents_only=_flag(
            env.get("OCIS_TRUSTED_DOCUMENTS_ONLY"), "OCIS_TRUSTED_DOCUMENTS_ONLY", False
        ),
        retention_days=_retention_days(env),
        retention_batch_size=_positive(
            env, "OCIS_RETENTION_BATCH_SIZE", defaults.retention_batch_size
        ),
        retention_every_hours=_hours(
            env.get("OCIS_RETENTION_EVERY_HOURS"),
            "OCIS_RETENTION_EVERY_HOURS",
            defaults.retention_every_hours,
        ),
    )
    if settings.cost_budget_per_minute < settings.max_query_cost:
        raise ConfigurationError(
            "OCIS_COST_BUDGET_PER_MINUTE must be at least OCIS_MAX_QUERY_COST"
            " (else the costliest allowed query could never run)"
        )
    if settings.is_production:
        problems = []
        if settings.master_key == DEVELOPMENT_MASTER_KEY:
            problems.append("OCIS_MASTER_KEY is unset (the development key is refused)")
        if settings.database_url.startswith("sqlite"):
            problems.append("DATABASE_URL must name PostgreSQL")
        if not settings.redis_url:
            problems.append("REDIS_URL is required (sessions are shared across processes)")
        if not settings.smtp_url:
            problems.append("SMTP_URL is required (account owners are told of sign-in changes)")
        if not settings.secure_cookies:
            problems.append("PUBLIC_URL must be https")
        if not settings.terminates_tls and not settings.trusted_proxies:
            problems.append(
                "TLS is required: set OCIS_TLS_CERT and OCIS_TLS_KEY, or OCIS_TRUSTED_PROXIES"
                " for the proxy that terminates it"
            )
        if settings.extra_job_modules:
            problems.append("OCIS_EXTRA_JOB_MODULES is for development (the tests' job kinds)")
        if not settings.audit_reads:
            problems.append(
                "OCIS_AUDIT_READS cannot be turned off (the policy promises audit logs)"
            )
        if problems:
            raise ConfigurationError("production refuses to start: " + "; ".join(problems))
    return settings
