"""A backend's score and the ranking of the candidates (as plugins/llm_router/src/score.rs,
without the TTFT term):

    score = weights.prefix    x share of the prompt's blocks it was sent before   (0..1)
          - weights.queue     x requests that would wait there, this one included
          - weights.in_flight x lbx's in-flight requests there
          - weights.kv_cache  x KV-cache use                                     (0..1)

Higher is better. Absolute terms, not min-max normalised: a load difference of one request must
not weigh as much as one of fifty. Saturated backends rank after all others; when every
candidate is saturated the least loaded goes first (the least bad), since prefix affinity would
only pile more onto a full replica. Ties go to the backend after the last one picked, so idle
replicas share new work instead of the first taking it all.
"""

from typing import NamedTuple

from .settings import Weights


class Scored(NamedTuple):
    """One candidate for one request."""

    index: int
    score: float
    #: Requests that would wait there (its load, first).
    waiting: float
    #: lbx's requests in flight there (its load, second).
    in_flight: float
    saturated: bool


def score(weights: Weights, prefix: float, waiting: float, in_flight: float,
          kv_cache: float) -> float:
    """The score of these terms."""
    return (weights.prefix * prefix - weights.queue * waiting
            - weights.in_flight * in_flight - weights.kv_cache * kv_cache)


def rank(candidates: list[Scored], first: int, backends: int) -> list[Scored]:
    """`candidates` best first; ties start at index `first` (modulo `backends`)."""
    count = max(backends, 1)
    start = first % count

    def turn(c: Scored) -> int:
        return (c.index - start) % count

    if all(c.saturated for c in candidates):
        return sorted(candidates, key=lambda c: (c.waiting, c.in_flight, -c.score, turn(c)))
    return sorted(candidates,
                  key=lambda c: (c.saturated, -c.score, c.waiting, c.in_flight, turn(c)))
