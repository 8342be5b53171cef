"""Where the token records live in the shared store, and for how long.

The store holds only hashes of codes and tokens (`auth.sessions.token_hash`) in its keys.
"""

from __future__ import annotations

CODE_TTL = 60
CODE_REPLAY_MEMORY = 10 * 60
REFRESH_FAMILY_TTL = 30 * 24 * 3600
MAX_OPAQUE_LENGTH = 128

CODE_PREFIX = "ocis:mobile:code:"
CODE_USED_PREFIX = "ocis:mobile:code-used:"
FAMILY_PREFIX = "ocis:mobile:family:"
USER_FAMILIES_PREFIX = "ocis:mobile:user-families:"
REFRESH_PREFIX = "ocis:mobile:refresh:"
REFRESH_CLAIM_PREFIX = "ocis:mobile:refresh-used:"
# When a person last signed out everywhere (or was disabled): codes issued before it are void.
NOT_BEFORE_PREFIX = "ocis:mobile:not-before:"


def opaque(value: str) -> bool:
    """Whether a presented code or refresh token could be one of ours, before any lookup."""
    return 0 < len(value) <= MAX_OPAQUE_LENGTH
