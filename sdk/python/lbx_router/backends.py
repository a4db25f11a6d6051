"""What a router knows of its backends: identities (`BackendInfo`, from `backends_changed`), the
host's live numbers for one request (`BackendStats`, read through `Backends`), the backend signals
(Prometheus gauges lbx scrapes) by name, and the candidates a router may choose from.

The host sends the per-request numbers as one flat list, 5 per backend (healthy, weight,
in-flight, ewma-latency-us, recent-failures: `wit/router.wit`, `router.choose`). `Backends`
keeps that list as it came and reads it by index: building five Python objects per backend for
every request would cost more than most routers' whole decision, so a `BackendStats` is made
only when asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, NamedTuple, Optional, Sequence, Union

#: Numbers per backend in the flat `stats` list of `router.choose`.
STATS_FIELDS = 5
_HEALTHY, _WEIGHT, _IN_FLIGHT, _EWMA, _FAILURES = range(STATS_FIELDS)


@dataclass(frozen=True)
class BackendInfo:
    """The identity of one backend, as configured: delivered by `Router.backends_changed`."""

    #: Stable identifier from the configuration (defaults to the address).
    id: str
    #: `host:port` the host connects to.
    address: str
    #: Relative weight from the configuration.
    weight: int = 1
    #: Free-form labels from the configuration, e.g. `{"pool": "api"}`.
    labels: Mapping[str, str] = field(default_factory=dict)

    def matches(self, selector: Mapping[str, str]) -> bool:
        """Whether every label of `selector` is set on this backend to the same value."""
        labels = self.labels
        return all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True)
class BackendStats:
    """Live statistics of one backend at this request, as plain numbers."""

    #: Whether the host considers the backend usable right now.
    healthy: bool = True
    #: Relative weight from the configuration (default 1).
    weight: int = 1
    #: Requests this lbx is serving on the backend now (always current).
    in_flight: int = 0
    #: Moving average of time to response headers, in microseconds (0 until the first response).
    ewma_latency_us: int = 0
    #: Failures seen recently; decays back to 0 on success.
    recent_failures: int = 0

    def flat(self) -> tuple[int, int, int, int, int]:
        """This backend's 5 numbers in the host's wire order."""
        return (int(self.healthy), self.weight, self.in_flight, self.ewma_latency_us,
                self.recent_failures)


class RetryContext(NamedTuple):
    """What the host knows about earlier attempts of this request. (A named tuple: made on
    every retry, and a frozen dataclass costs several times more to construct.)"""

    #: 0 for the first attempt, 1 for the first retry, and so on.
    attempt: int = 0
    #: Indexes of backends that already failed this request.
    tried: Sequence[int] = ()


#: The retry context of every first attempt (the host sends none): shared, as it never changes.
FIRST_ATTEMPT = RetryContext()


class Backends:
    """Every backend for one request: `len()`, `backends[i]` (a `BackendStats`), per-field
    readers by index (`in_flight(i)`, ...), identities (`info(i)`), signals by name, and
    candidates.

    The SDK keeps one `Backends` per plugin instance and refills it for each request.
    """

    __slots__ = ("_stats", "_count", "_infos", "_names", "_signals")

    def __init__(
        self,
        stats: Union[Sequence[int], Iterable[BackendStats]] = (),
        infos: Sequence[BackendInfo] = (),
        signal_names: Sequence[str] = (),
        signals: Optional[Sequence[float]] = None,
    ) -> None:
        """`stats` is either the host's flat list (5 ints per backend) or `BackendStats` values."""
        items = list(stats)
        if items and isinstance(items[0], BackendStats):
            items = [n for b in items for n in b.flat()]  # type: ignore[union-attr]
        self._infos: Sequence[BackendInfo] = infos
        self._names: Sequence[str] = signal_names
        self.refill(items, signals)  # type: ignore[arg-type]

    def refill(self, stats: Sequence[int], signals: Optional[Sequence[float]]) -> None:
        """Take one request's numbers (the SDK's glue calls this; names and infos stay)."""
        self._stats = stats
        self._count = len(stats) // STATS_FIELDS
        self._signals = signals or ()

    def set_identities(self, infos: Sequence[BackendInfo], signal_names: Sequence[str]) -> None:
        """Keep the identities and signal names of the last `backends_changed`."""
        self._infos = infos
        self._names = signal_names

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> BackendStats:
        if not 0 <= index < self._count:
            raise IndexError(f"backend {index} out of range ({self._count} backends)")
        s, at = self._stats, index * STATS_FIELDS
        return BackendStats(s[at] != 0, s[at + 1], s[at + 2], s[at + 3], s[at + 4])

    def __iter__(self) -> Iterator[BackendStats]:
        return (self[i] for i in range(self._count))

    def __repr__(self) -> str:
        return f"Backends({list(self)!r})"

    # Per-field readers: no object per backend, for the hot path.
    def healthy(self, index: int) -> bool:
        """Whether backend `index` is usable right now."""
        return self._stats[index * STATS_FIELDS + _HEALTHY] != 0

    def weight(self, index: int) -> int:
        """Backend `index`'s configured weight."""
        return self._stats[index * STATS_FIELDS + _WEIGHT]

    def in_flight(self, index: int) -> int:
        """Requests in flight on backend `index`."""
        return self._stats[index * STATS_FIELDS + _IN_FLIGHT]

    def ewma_latency_us(self, index: int) -> int:
        """Backend `index`'s moving average latency to response headers, in microseconds."""
        return self._stats[index * STATS_FIELDS + _EWMA]

    def recent_failures(self, index: int) -> int:
        """Backend `index`'s recent failures."""
        return self._stats[index * STATS_FIELDS + _FAILURES]

    # Identities, from the last `backends_changed`.
    def info(self, index: int) -> Optional[BackendInfo]:
        """Backend `index`'s identity (id, address, weight, labels), if the host gave it."""
        return self._infos[index] if 0 <= index < len(self._infos) else None

    def labels(self, index: int) -> Mapping[str, str]:
        """Backend `index`'s labels (empty if unknown)."""
        info = self.info(index)
        return info.labels if info is not None else {}

    # Candidates.
    def healthy_indices(self) -> list[int]:
        """Indexes of the healthy backends, in order."""
        # One slice of the healthy flags, then one comprehension: the cheapest walk in CPython.
        flags = self._stats[0:self._count * STATS_FIELDS:STATS_FIELDS]
        return [i for i, healthy in enumerate(flags) if healthy]

    def candidates(self, retry: RetryContext = FIRST_ATTEMPT) -> list[int]:
        """Healthy backends not yet tried by this request; every healthy backend when all of them
        were tried (a retry then still has somewhere to go), as the Rust SDK's `Candidates`."""
        healthy = self.healthy_indices()
        tried = retry.tried
        if not tried:
            return healthy
        fresh = [i for i in healthy if i not in tried]
        return fresh or healthy

    def least_in_flight(self, indices: Iterable[int]) -> Optional[int]:
        """The index among `indices` with the fewest requests in flight (the first on a tie)."""
        # A plain loop: `min` with a key lambda costs twice as much for a handful of backends.
        s = self._stats
        best, low = None, 0
        for i in indices:
            n = s[i * STATS_FIELDS + _IN_FLIGHT]
            if best is None or n < low:
                best, low = i, n
        return best

    # Signals: `1 + n` numbers per backend (scrape age, then one per name); NaN when missing.
    @property
    def signal_names(self) -> Sequence[str]:
        """The names of the backend signals, in slot order (empty when none are configured)."""
        return self._names

    def signal(self, index: int, name: str) -> Optional[float]:
        """Backend `index`'s latest value of the signal `name`; None if missing or unknown."""
        try:
            slot = list(self._names).index(name)
        except ValueError:
            return None
        return self._reading(index, 1 + slot)

    def signal_age_ms(self, index: int) -> Optional[float]:
        """Age in milliseconds of backend `index`'s last successful scrape; None if never."""
        return self._reading(index, 0)

    def _reading(self, index: int, offset: int) -> Optional[float]:
        at = index * (len(self._names) + 1) + offset
        if index < 0 or at >= len(self._signals):
            return None
        value = self._signals[at]
        return None if math.isnan(value) else value
