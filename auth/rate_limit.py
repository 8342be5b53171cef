"""Attempt counters per IP and per account, kept in the shared store so every process agrees.

Each counter is a fixed window: the first attempt creates the key with the window as its TTL,
later attempts only increment it, so the window never slides and `Retry-After` is the key's
remaining TTL. Creating, incrementing and reading the TTL run in one MULTI/EXEC transaction,
which real Redis and fakeredis both run atomically (fakeredis has no Lua without `lupa`).

Keys never hold a raw email, login or IP: the identifier is normalised as for the blind index,
then hashed again under a key derived from the blind-index key for this purpose only, so a
counter key cannot be matched against the `email_index` column of a database dump.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from redis.asyncio import Redis

from auth.client_ip import parse_ip
from models import crypto
from observability import RATE_LIMITED

KEY_PREFIX = "ocis:rl:"
MAX_LOGIN = 320  # as auth/login.py: longer logins cannot name an account
IPV6_PREFIX = 64  # one IPv6 subscriber usually holds a whole /64, so count it as one client


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `limit` attempts per `window_seconds` for one key in `bucket`."""

    bucket: str
    limit: int
    window_seconds: int


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether to go on; if not, seconds until the (longest) exceeded window ends."""

    allowed: bool
    retry_after: int = 0


# Password sign-in (POST /auth/password). Per account: a person mistyping their password a few
# times stays well under 10, an online guesser gets 40 tries an hour on one account. Per IP: 50
# leaves room for an office behind one NAT address while capping password spraying across
# accounts from one address. Every attempt counts, whether it succeeds or not.
PASSWORD_PER_ACCOUNT = Limit("password:account", 10, 15 * 60)
PASSWORD_PER_IP = Limit("password:ip", 50, 15 * 60)
# A browser with a valid device cookie for the account (auth/device_cookies.py) is not judged by
# the account's limit, which anyone can exhaust, but by an allowance of its own: 10 failures
# per 15 minutes for that one cookie. A right password gives its attempt back.
PASSWORD_PER_DEVICE = Limit("password:device", 10, 15 * 60)
# Registration: the email being registered (which also limits probing which emails exist) and
# the caller's IP.
REGISTER_PER_ACCOUNT = Limit("register:account", 5, 60 * 60)
REGISTER_PER_IP = Limit("register:ip", 10, 60 * 60)
# Password reset mails: a person who lost their password asks a few times; more is someone
# making OCIS mail an address (per address) or probing many (per IP). Changing a password or an
# email checks the current password: as guessable as a sign-in, so limited like one.
RESET_PER_ACCOUNT = Limit("reset:account", 5, 60 * 60)
RESET_PER_IP = Limit("reset:ip", 20, 60 * 60)
CURRENT_PASSWORD_PER_ACCOUNT = Limit("current-password:account", 10, 15 * 60)
# Privacy requests: generous for a data subject exercising several rights in one sitting, but a
# script cannot flood the privacy team's queue. The account is the signed-in user.
PRIVACY_REQUEST_PER_ACCOUNT = Limit("privacy-request:account", 10, 24 * 60 * 60)
PRIVACY_REQUEST_PER_IP = Limit("privacy-request:ip", 30, 60 * 60)
# Provider callbacks: one per sign-in, so 30 in 15 minutes per address is generous; it caps
# replaying stolen or guessed callback URLs. Token endpoint: a device refreshes about every
# 10 minutes, so 120 per address leaves room for many devices behind one NAT address.
CALLBACK_PER_IP = Limit("callback:ip", 30, 15 * 60)
TOKEN_PER_IP = Limit("token:ip", 120, 15 * 60)
# Per account: one identity signing in 20 times in 15 minutes through its provider, or one
# person's devices asking for tokens 60 times, is no person signing in.
CALLBACK_PER_ACCOUNT = Limit("callback:account", 20, 15 * 60)
TOKEN_PER_ACCOUNT = Limit("token:account", 60, 15 * 60)
# Replies and new tickets, per account: an agent answering a busy queue writes a reply every
# 15 seconds at most, a customer far fewer; a script writing 150 replies in seconds makes every
# later page of the thread and the queue cost more for everyone.
REPLY_PER_ACCOUNT = Limit("reply:account", 60, 15 * 60)
TICKET_PER_ACCOUNT = Limit("ticket:account", 30, 60 * 60)
# One-click unsubscribe (RFC 8058): mail providers POST it from shared servers, so a valid link
# is counted per account it names (20 clicks in 15 minutes is no person), never per IP; a
# forged or expired one is counted per IP.
UNSUBSCRIBE_PER_ACCOUNT = Limit("unsubscribe:account", 20, 15 * 60)
UNSUBSCRIBE_PER_IP = Limit("unsubscribe:ip", 60, 15 * 60)
# Usage events (P09): a busy client sends one per page or feature used, a few a minute; 300 in
# 15 minutes per account (or, anonymous, 1200 per address: visitors behind one NAT address) is
# more than a person clicks, and keeps a script from inflating the counts.
USAGE_PER_ACCOUNT = Limit("usage:account", 300, 15 * 60)
USAGE_PER_IP = Limit("usage:ip", 1200, 15 * 60)
# Starting a sign-in writes a 10-minute transaction to the store: at most 60 per address.
LOGIN_START_PER_IP = Limit("login:ip", 60, 15 * 60)
# GraphQL query cost (schema/cost.py), per signed-in account or else per IP, per minute; the
# budget itself is a setting (OCIS_COST_BUDGET_PER_MINUTE).
COST_WINDOW_SECONDS = 60
COST_PER_ACCOUNT = "query-cost:account"
COST_PER_IP = "query-cost:ip"


def ip_key(ip: str | None) -> str:
    """What to count an IP under: the address, an IPv6 /64, or one shared bucket for none."""
    address = parse_ip(ip) if ip else None
    if address is None:
        return "unknown"
    if isinstance(address, IPv6Address):
        return str(IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


def counter_key(bucket: str, key: str) -> str:
    """The store key counting `key` in `bucket`; the identifier appears only as a keyed hash."""
    secret = crypto.keyring().blind_index_key
    purpose_key = hmac.new(secret, b"ocis/rate-limit", hashlib.sha256).digest()
    subject = f"{bucket}\x00{crypto.blind_index(key)}".encode()
    return f"{KEY_PREFIX}{bucket}:{hmac.new(purpose_key, subject, hashlib.sha256).hexdigest()}"


def _seconds_left(pttl: int, window_seconds: int) -> int:
    if pttl < 0:
        return window_seconds
    return max(1, math.ceil(pttl / 1000))


async def hit_all(store: Redis, attempts: Sequence[tuple[Limit, str]]) -> Decision:
    """Count one attempt against every (limit, key); refused if any limit is exceeded."""
    names = [counter_key(limit.bucket, key) for limit, key in attempts]
    async with store.pipeline(transaction=True) as pipe:
        for (limit, _), name in zip(attempts, names, strict=True):
            pipe.set(name, 0, ex=limit.window_seconds, nx=True)
            pipe.incr(name)
            pipe.pttl(name)
        results = await pipe.execute()
    retry_after = 0
    for index, ((limit, _), name) in enumerate(zip(attempts, names, strict=True)):
        count, pttl = int(results[3 * index + 1]), int(results[3 * index + 2])
        if pttl == -1:  # a counter without expiry would lock its key out for good
            await store.expire(name, limit.window_seconds)
        if count > limit.limit:
            RATE_LIMITED.labels(limit.bucket).inc()
            retry_after = max(retry_after, _seconds_left(pttl, limit.window_seconds))
    return Decision(allowed=retry_after == 0, retry_after=retry_after)


async def hit(store: Redis, bucket: str, key: str, *, limit: int, window_seconds: int) -> Decision:
    """Count one attempt for `key` (an account identifier, or `ip_key(ip)`) in `bucket`."""
    return await hit_all(store, [(Limit(bucket, limit, window_seconds), key)])


async def password_attempt(
    store: Redis, *, login: str, ip: str | None, device: str | None = None
) -> Decision:
    """Counted per IP, and per account, or per device for a browser trusted by that account."""
    first = (
        (PASSWORD_PER_DEVICE, device)
        if device is not None
        else (PASSWORD_PER_ACCOUNT, login[:MAX_LOGIN])
    )
    return await hit_all(store, [first, (PASSWORD_PER_IP, ip_key(ip))])


async def password_right_on_device(store: Redis, *, device: str) -> None:
    """A trusted browser's right password was no guess: its device allowance counts failures."""
    name = counter_key(PASSWORD_PER_DEVICE.bucket, device)
    async with store.pipeline(transaction=True) as pipe:
        pipe.decr(name)
        pipe.pttl(name)
        count, pttl = await pipe.execute()
    if pttl == -1 and int(count) <= 0:  # the window ended meanwhile: leave no counter behind
        await store.delete(name)


async def registration_attempt(store: Redis, *, email: str | None, ip: str | None) -> Decision:
    """`register`, and finishing a provider sign-up (which knows no email yet: IP only)."""
    attempts = [(REGISTER_PER_IP, ip_key(ip))]
    if email is not None:
        attempts.insert(0, (REGISTER_PER_ACCOUNT, email[:MAX_LOGIN]))
    return await hit_all(store, attempts)


async def password_reset_attempt(store: Redis, *, email: str, ip: str | None) -> Decision:
    return await hit_all(
        store, [(RESET_PER_ACCOUNT, email[:MAX_LOGIN]), (RESET_PER_IP, ip_key(ip))]
    )


async def current_password_attempt(store: Redis, *, account: str) -> Decision:
    """Changing one's password or email: the current password is checked, as at sign-in."""
    return await hit_all(store, [(CURRENT_PASSWORD_PER_ACCOUNT, account)])


async def privacy_request_attempt(store: Redis, *, account: str | None, ip: str | None) -> Decision:
    attempts = [(PRIVACY_REQUEST_PER_IP, ip_key(ip))]
    if account is not None:
        attempts.append((PRIVACY_REQUEST_PER_ACCOUNT, account))
    return await hit_all(store, attempts)


async def usage_attempt(store: Redis, *, account: str | None, ip: str | None) -> Decision:
    if account is not None:
        return await hit_all(store, [(USAGE_PER_ACCOUNT, account)])
    return await hit_all(store, [(USAGE_PER_IP, ip_key(ip))])


async def callback_attempt(store: Redis, *, ip: str | None) -> Decision:
    return await hit_all(store, [(CALLBACK_PER_IP, ip_key(ip))])


async def callback_identity_attempt(store: Redis, *, identity: str) -> Decision:
    """Counted once the provider's ID token is verified: `identity` is issuer, tenant, subject."""
    return await hit_all(store, [(CALLBACK_PER_ACCOUNT, identity)])


async def token_attempt(store: Redis, *, ip: str | None, account: str | None = None) -> Decision:
    attempts = [(TOKEN_PER_IP, ip_key(ip))]
    if account is not None:
        attempts.append((TOKEN_PER_ACCOUNT, account))
    return await hit_all(store, attempts)


async def login_start_attempt(store: Redis, *, ip: str | None) -> Decision:
    return await hit_all(store, [(LOGIN_START_PER_IP, ip_key(ip))])


async def reply_attempt(store: Redis, *, account: str) -> Decision:
    return await hit_all(store, [(REPLY_PER_ACCOUNT, account)])


async def ticket_attempt(store: Redis, *, account: str) -> Decision:
    return await hit_all(store, [(TICKET_PER_ACCOUNT, account)])


async def charge_query_cost(
    store: Redis, *, account: str | None, ip: str | None, cost: int, budget: int
) -> Decision:
    """Spend `cost` of the caller's budget for this minute: the account, else the IP.

    A refused query spends nothing, so a caller near the end of the budget can still send a
    cheaper one.
    """
    bucket, key = (COST_PER_ACCOUNT, account) if account is not None else (COST_PER_IP, ip_key(ip))
    name = counter_key(bucket, key)
    async with store.pipeline(transaction=True) as pipe:
        pipe.set(name, 0, ex=COST_WINDOW_SECONDS, nx=True)
        pipe.incrby(name, cost)
        pipe.pttl(name)
        _, spent, pttl = await pipe.execute()
    if int(pttl) == -1:  # a counter without expiry would lock its caller out for good
        await store.expire(name, COST_WINDOW_SECONDS)
    if int(spent) <= budget:
        return Decision(allowed=True)
    await store.decrby(name, cost)
    RATE_LIMITED.labels(bucket).inc()
    return Decision(allowed=False, retry_after=_seconds_left(int(pttl), COST_WINDOW_SECONDS))
