"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for mail tests."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Mailbox:
    """What the server accepted, in order."""

    port: int
    received: list[Received] = field(default_factory=list)
    refuse: bool = False

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse:
            return "451 4.3.0 try again later"
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        """Wait (bounded) until at least `count` messages arrived.

        Messages arrive on the server's own thread and loop, so this polls.
        """
        deadline = time.monotonic() + within
        while len(self.received) < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return self.received


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """Serve SMTP on 127.0.0.1 until the block ends."""
    for attempt in range(3):
        mailbox = Mailbox(port=free_port())
        controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
        try:
            controller.start()
            break
        except (OSError, RuntimeError):  # the free port was taken meanwhile: another one
            if attempt == 2:
                raise
    try:
        yield mailbox
    finally:
        controller.stop()
