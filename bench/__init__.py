"""The benchmark harness (`make bench`): OCIS's GraphQL against a hand-written endpoint."""

from __future__ import annotations

QUERY = (
    "{ tickets(first: 50) { edges { node { id subject status requester { name email }"
    " messages(first: 10) { edges { node { body } } } } } } }"
)
