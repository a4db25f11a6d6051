"""How many requests wait at a backend now, and whether one more would, from a scrape that is
already old (as plugins/llm_router/src/queue.rs).

A scraped `vllm:num_requests_waiting` describes the moment of its scrape; lbx has sent more
since. lbx's in-flight count is current, so the estimate is the scraped queue plus how much the
in-flight count grew since that scrape (or minus how much it shrank). The in-flight count "at
the scrape" is the one seen by this instance's first decision after it.

With the operator's `slots` (requests one replica runs at once) and
`vllm:num_requests_running` scraped, a backend's requests (running and waiting, corrected the
same way, never fewer than lbx's in flight there) beyond its slots are waiting, and this request
would wait when they fill them.

**Simplified:** slots are never learned from the scrapes (the Rust plugin learns them from two
scrapes in a row showing a queue); without `slots`, only requests already waiting count.
"""

from typing import NamedTuple, Optional

#: A new scrape is one whose time differs by more than this from the last one seen (µs):
#: ages arrive in milliseconds with some jitter.
SAME_SCRAPE_US = 2_000


class Estimate(NamedTuple):
    """A backend's queue as estimated now."""

    #: Requests waiting now.
    waiting: float
    #: Requests that would wait counting one more sent now (`waiting + 1` when its slots are
    #: full; `waiting` when its slots are unknown).
    waiting_if_sent: float


class _Baseline(NamedTuple):
    scraped_at_us: int
    in_flight: int


class QueueEstimates:
    """Per backend index, the scrape last seen and lbx's in-flight count then."""

    def __init__(self, slots: Optional[float]) -> None:
        self.slots = slots
        self._baselines: list[Optional[_Baseline]] = []

    def reset(self, backends: int) -> None:
        """Forgets every baseline (a new backend set: indexes changed)."""
        self._baselines = [None] * backends

    def estimate(self, index: int, waiting: float, running: Optional[float], age_ms: float,
                 in_flight: int, now_us: int) -> Estimate:
        """Backend `index`'s queue now, from a scrape `age_ms` old that showed `waiting` (and
        `running`, if scraped), with `in_flight` of lbx's requests there now."""
        if not 0 <= index < len(self._baselines):
            return Estimate(waiting, waiting)
        scraped_at_us = max(0, now_us - int(max(age_ms, 0.0) * 1000))
        baseline = self._baselines[index]
        if baseline is None or abs(baseline.scraped_at_us - scraped_at_us) > SAME_SCRAPE_US:
            baseline = self._baselines[index] = _Baseline(scraped_at_us, in_flight)
        sent_since = in_flight - baseline.in_flight
        if self.slots is not None and running is not None:
            # lbx's own count is never older than the scrape: a request sent just before it may
            # not have reached the engine yet.
            requests = max(running + waiting + sent_since, float(in_flight))
            return Estimate(max(requests - self.slots, 0.0),
                            max(requests + 1 - self.slots, 0.0))
        # Slots unknown: every request sent since the scrape may be waiting.
        now_waiting = max(waiting + sent_since, 0.0)
        return Estimate(now_waiting, now_waiting)
