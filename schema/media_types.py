"""The media types of the GraphQL-over-HTTP specification, and choosing one by `Accept`."""

from __future__ import annotations

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# Exact ranges beat `application/*`, which beats `*/*`.
_SPECIFICITY = {"*/*": 0, "application/*": 1}


def _ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media_range, *parameters = (piece.strip() for piece in part.split(";"))
        if not media_range:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        ranges.append((media_range.lower(), quality))
    return ranges


def negotiate(accept: str | None) -> str | None:
    """The media type to answer with, or None when `Accept` admits neither of ours.

    No `Accept` means `application/json` (older clients); so do wildcards. A client naming
    both types with the same weight gets the newer one.
    """
    if accept is None or not accept.strip():
        return JSON
    best: tuple[float, int, int] | None = None
    chosen: str | None = None
    for preference, media_type in enumerate((JSON, GRAPHQL_RESPONSE)):
        matches = [
            (quality, _SPECIFICITY.get(media_range, 2))
            for media_range, quality in _ranges(accept)
            if media_range in (media_type, "*/*", "application/*")
        ]
        if not matches:
            continue
        quality, specificity = max(matches, key=lambda match: match[1])
        # Named exactly, the newer type wins a tie; through a wildcard, the older one does.
        rank = (quality, specificity, preference if specificity == 2 else -preference)
        if quality > 0 and (best is None or rank > best):
            best, chosen = rank, media_type
    return chosen
