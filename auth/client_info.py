"""Metadata collected automatically at sign-in (P04): network, browser, device."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import available_timezones

import user_agents

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


def describe_client(
    *,
    ip_address: str | None,
    user_agent: str | None,
    referrer: str | None,
    time_zone: str | None,
    location: str | None = None,
) -> ClientInfo:
    """Parse what a request says about its client; unknown or malformed values become None."""
    browser = browser_version = os_name = device = None
    if user_agent:
        agent = user_agents.parse(user_agent[:1024])
        browser = agent.browser.family[:60] or None
        browser_version = agent.browser.version_string[:30] or None
        os_name = agent.os.family[:60] or None
        device = _device_type(agent)
    return ClientInfo(
        ip_address=ip_address,
        browser=browser,
        browser_version=browser_version,
        os=os_name,
        device_type=device,
        time_zone=time_zone if time_zone in _TIME_ZONES else None,
        referrer=referrer[:MAX_REFERRER] if referrer else None,
        location=location,
    )
