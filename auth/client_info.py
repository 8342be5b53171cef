"""Metadata collected automatically at sign-in (P04): network, browser, device."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit
from zoneinfo import available_timezones

import user_agents

from auth.card_data import contains_card_data

MAX_REFERRER = 512
_TIME_ZONES = frozenset(available_timezones())


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip_address: str | None = None
    browser: str | None = None
    browser_version: str | None = None
    os: str | None = None
    device_type: str | None = None
    time_zone: str | None = None
    referrer: str | None = None
    location: str | None = None


def _device_type(agent: user_agents.parsers.UserAgent) -> str:
    if agent.is_bot:
        return "bot"
    if agent.is_tablet:
        return "tablet"
    if agent.is_mobile:
        return "mobile"
    if agent.is_pc:
        return "desktop"
    return "other"


def stored_header(value: str | None) -> str | None:
    """A header value fit to store: dropped (None) when it carries card data (P03)."""
    if not value or contains_card_data(value):
        return None
    return value


def referrer_origin(referrer: str | None) -> str | None:
    """Only the origin (scheme://host[:port]) of a Referer: its path and query may hold anything."""
    if not referrer:
        return None
    try:
        parts = urlsplit(referrer.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    origin = f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")
    return stored_header(origin[:MAX_REFERRER])


def describe_client(
    *,
    ip_address: str | None,
    user_agent: str | None,
    referrer: str | None,
    time_zone: str | None,
    location: str | None = None,
) -> ClientInfo:
    """Parse what a request says about its client; unknown or malformed values become None,
    and so does any value carrying card data (P03)."""
    browser = browser_version = os_name = device = None
    user_agent = stored_header(user_agent)
    if user_agent:
        agent = user_agents.parse(user_agent[:1024])
        browser = agent.browser.family[:60] or None
        browser_version = agent.browser.version_string[:30] or None
        os_name = agent.os.family[:60] or None
        device = _device_type(agent)
    return ClientInfo(
        ip_address=ip_address,
        browser=stored_header(browser),
        browser_version=stored_header(browser_version),
        os=stored_header(os_name),
        device_type=device,
        time_zone=stored_header(time_zone) if time_zone in _TIME_ZONES else None,
        referrer=referrer_origin(referrer),
        location=stored_header(location),
    )
