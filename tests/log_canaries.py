"""What must never reach a log line: the test data's personal values, clients' IPs, secrets.

The account canaries come from the demo data's own definition (resolvers/demo.py), so a new
demo account is covered; the demo tickets' subjects are listed here. The IPs are every address
of the documentation ranges (RFC 5737) that the tests give their clients.
"""

from __future__ import annotations

import logging
import re

from observability import QUIET, JsonLines
from resolvers.demo import DEMO_ACCOUNTS, DEMO_PASSWORD

PERSONAL = sorted(
    {value for account in DEMO_ACCOUNTS for value in (account.email, account.name)}
    | {DEMO_PASSWORD}
    | {
        "Cannot reset my password",
        "Invoice shows the wrong address",
        "How do I export my data?",
        "App crashes on start",
        "Feature request: dark mode",
    }
)
# Loggers of the tests' own peers: the HTTP clients log the URLs they call (the server keeps
# httpx quiet), and the SMTP server in the tests (aiosmtpd, "mail.log") the envelopes it takes.
TEST_SIDE = (*QUIET, "mail")
CLIENT_IP = re.compile(r"\b(?:192\.0\.2|198\.51\.100|203\.0\.113)\.\d{1,3}\b")
# A signed token (JWT/JWS) or a session cookie's value after its name.
SECRET = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|ocis_session=[^;\s\"]{8,}")


class LogCanaries(logging.Handler):
    """Keeps every record of INFO and above as the JSON line production would write."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonLines())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] not in TEST_SIDE:
            self.lines.append(self.format(record))

    def leaks(self) -> list[str]:
        found = []
        for line in self.lines:
            lowered = line.lower()
            named = [value for value in PERSONAL if value.lower() in lowered]
            if named or CLIENT_IP.search(line) or SECRET.search(line):
                found.append(line)
        return found
