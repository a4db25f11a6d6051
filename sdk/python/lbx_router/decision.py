"""The plugin's answer for one request: `pick` a backend (with headers, fallbacks, statuses worth
a retry, a path rewrite, a tag), `reject` the request with a status, or `no_opinion` (the host's
built-in fallback decides). Plain values, so the test kit reads them without Wasm; the glue
turns them into the contract's types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Union

#: Headers as `[(name, value), ...]` or `{name: value}`.
Headers = Union[Iterable[tuple[str, str]], Mapping[str, str]]


def _headers(headers: Headers) -> tuple[tuple[str, str], ...]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(n), str(v)) for n, v in items)


@dataclass(frozen=True)
class Pick:
    """Send the request to backend `backend` (its index in this call's `backends`)."""

    backend: int
    #: Headers added to the request sent to the backend.
    upstream_headers: tuple[tuple[str, str], ...] = ()
    #: Headers added to the response sent to the client (e.g. a sticky `set-cookie`).
    downstream_headers: tuple[tuple[str, str], ...] = ()
    #: Alternates in order of preference, taken by retries without calling `choose` again.
    fallbacks: tuple[int, ...] = ()
    #: Response statuses worth another attempt (e.g. 429, 503).
    retry_on: tuple[int, ...] = ()
    #: A new upstream path and query in origin form (`/v1/users?page=2`).
    rewrite: Optional[str] = None
    #: An opaque number handed back in the `Outcome` of this pick.
    tag: int = 0

    @property
    def has_options(self) -> bool:
        """Whether anything beyond backend and headers is set (a plain pick crosses cheaper)."""
        return bool(self.fallbacks or self.retry_on or self.rewrite is not None or self.tag)


@dataclass(frozen=True)
class Reject:
    """Answer the client directly with `status` (4xx or 5xx) and these headers."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NoOpinion:
    """No preference: the host's built-in fallback (least in-flight among healthy) decides."""


Decision = Union[Pick, Reject, NoOpinion]
_NO_OPINION = NoOpinion()
#: The plain pick of each index, made once: a frozen dataclass costs ~1 µs to construct (native
#: CPython; more in Wasm), a large part of a whole decision. The glue also recognises these by
#: identity and sends a pre-lowered answer.
PLAIN_PICKS: dict[int, Pick] = {}


def pick(
    backend: int,
    *,
    upstream_headers: Headers = (),
    downstream_headers: Headers = (),
    fallbacks: Iterable[int] = (),
    retry_on: Iterable[int] = (),
    rewrite: Optional[str] = None,
    tag: int = 0,
) -> Pick:
    """Send the request to backend `backend`, with optional headers and pick options."""
    if not (upstream_headers or downstream_headers or fallbacks or retry_on or rewrite or tag):
        # The common plain pick: made once per index (this runs on every decision).
        plain = PLAIN_PICKS.get(backend)
        if plain is None:
            plain = PLAIN_PICKS[backend] = Pick(int(backend))
        return plain
    return Pick(int(backend), _headers(upstream_headers), _headers(downstream_headers),
                tuple(int(i) for i in fallbacks), tuple(int(s) for s in retry_on), rewrite,
                int(tag))


def reject(status: int, headers: Headers = ()) -> Reject:
    """Answer the client directly with `status` (e.g. 429 with `retry-after`)."""
    return Reject(int(status), _headers(headers))


def no_opinion() -> NoOpinion:
    """Leave the choice to the host's built-in fallback."""
    return _NO_OPINION
