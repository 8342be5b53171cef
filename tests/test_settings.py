"""Settings from the environment: the development origin follows HOST and PORT."""

from __future__ import annotations

import base64

import pytest

import settings as config


@pytest.mark.parametrize(
    ("environ", "public_url"),
    [
        pytest.param({"PORT": "9000"}, "http://127.0.0.1:9000", id="port"),
        pytest.param({"HOST": "localhost", "PORT": "18123"}, "http://localhost:18123", id="host"),
        pytest.param({"HOST": "0.0.0.0", "PORT": "9000"}, "http://127.0.0.1:9000", id="any-v4"),  # noqa: S104
        pytest.param({"HOST": "::", "PORT": "9000"}, "http://127.0.0.1:9000", id="any-v6"),
        pytest.param({"HOST": "::1", "PORT": "9000"}, "http://[::1]:9000", id="ipv6"),
    ],
)
def test_development_public_url_follows_host_and_port(
    environ: dict[str, str], public_url: str
) -> None:
    settings = config.from_environ(environ)
    assert settings.public_url == public_url
    assert public_url in settings.allowed_origins
    assert not settings.secure_cookies


def test_a_set_public_url_wins_and_production_still_needs_https() -> None:
    assert config.from_environ({"PORT": "9000"}).public_url == "http://127.0.0.1:9000"
    assert config.from_environ({}).public_url == "http://127.0.0.1:8000"
    chosen = config.from_environ({"PORT": "9000", "PUBLIC_URL": "http://ocis.example.com/"})
    assert chosen.public_url == "http://ocis.example.com"
    production = {
        "OCIS_ENV": "production",
        "OCIS_MASTER_KEY": base64.b64encode(b"m" * 32).decode(),
        "DATABASE_URL": "postgres://ocis@db.example.com:5432/ocis",
        "REDIS_URL": "redis://cache.example.com:6379/0",
        "SMTP_URL": "smtps://mail.example.com:465",
        "OCIS_TRUSTED_PROXIES": "10.0.0.0/8",
        "PORT": "9000",
    }
    with pytest.raises(config.ConfigurationError, match="PUBLIC_URL must be https"):
        config.from_environ(production)
    served = config.from_environ({**production, "PUBLIC_URL": "https://support.example.com"})
    assert served.public_url == "https://support.example.com"
    assert served.secure_cookies
