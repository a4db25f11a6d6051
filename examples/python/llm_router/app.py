"""LLM router for lbx, in Python on the lbx_router SDK: a port of the scoring of
plugins/llm_router (Rust) for OpenAI-style model servers (vLLM, SGLang, ...).

For each request on the configured `paths` it reads the body's `model` and prompt, keeps the
backends serving that model (label `model`; `unknown_model_status` 404 when none does, 503 when
all of them are down), scores each healthy candidate not yet tried by this request:

    score = weights.prefix    x share of the prompt's blocks it was sent before
          - weights.queue     x requests that would wait there, this one included
          - weights.in_flight x lbx's in-flight requests there
          - weights.kv_cache  x KV-cache use

ranks saturated backends last (or sheds the request with 429 and `retry-after` when all are and
`saturation.shed` is on), picks the best with the next ones as ranked fallbacks, and records in
the prefix index (lbx's key-value store) that the chosen backend was sent this prompt.

    [plugin]
    path = "llm_router_py.wasm"
    body_prefix = "16KiB"
    [signals]
    metrics = ["vllm:num_requests_waiting", "vllm:num_requests_running",
               "vllm:kv_cache_usage_perc"]

Simplified against the Rust plugin (see README.md): no TTFT learning (`weights.ttft` is
refused), slots are not learned (only the operator's `slots`), a body cut at the prefix limit
gives no model or prompt, and a different prefix hash (BLAKE2b, not xxh64).

Test: python3 -m pytest -q examples/python/llm_router   (no Wasm build needed)
Build: bash examples/python/llm_router/build.sh          (needs componentize-py 0.25.1)
"""

from __future__ import annotations

from typing import Any, Optional

import lbx_router
from lbx_router import BackendInfo, Backends, Decision, Request, RetryContext

from llm_scoring import blocks, prompt, ranking, settings
from llm_scoring.models import UNKNOWN_MODEL, ModelFilter
from llm_scoring.prefix_index import PrefixIndex, backend_key
from llm_scoring.queue_estimate import QueueEstimates


class LlmRouter(lbx_router.Router):
    """Routes each completion to the replica that best combines its prompt's cached prefix with
    a short queue."""

    def init(self, config: Any) -> None:
        try:
            self.settings = settings.parse(config)
        except ValueError as problems:
            raise lbx_router.ConfigError(str(problems)) from None
        prefix = self.settings.prefix
        self.index = PrefixIndex(prefix.key_prefix, prefix.capacity)
        self.queues = QueueEstimates(self.settings.slots)
        self.models = ModelFilter()
        #: Each backend's name in the prefix index, by index.
        self.backend_keys: list[int] = []
        #: Where ties start: advances with each decision.
        self.rotation = 0

    def backends_changed(self, backends: list[BackendInfo]) -> None:
        self.models = ModelFilter([b.labels for b in backends], self.settings.model_label)
        self.backend_keys = [backend_key(b.id) for b in backends]
        self.queues.reset(len(backends))

    def choose(self, request: Request, backends: Backends, retry: RetryContext) -> Decision:
        config = self.settings
        body = request.body_json() if request.path() in config.paths else None
        model, prompt_bytes = prompt.read(body)
        eligible = self.models.eligible(model)
        if eligible is UNKNOWN_MODEL:
            return lbx_router.reject(config.unknown_model_status)
        candidates = _usable(eligible, backends, retry)
        if not candidates:
            # Every backend of this model is down: lbx's fallback would pick one serving
            # another model. Without a model, lbx answers for itself.
            return lbx_router.reject(503) if model is not None else lbx_router.no_opinion()

        block_count, points = blocks.checkpoints(
            prompt_bytes, config.prefix.block_bytes, config.prefix.max_blocks)
        held = self.index.lookup(points) if points else {}
        now_us = lbx_router.now_us()
        scored = [self._score(i, backends, held, block_count, now_us) for i in candidates]
        saturation = config.saturation
        if saturation.shed and all(c.saturated for c in scored):
            retry_after = saturation.retry_after
            headers = [("retry-after", str(retry_after))] if retry_after else []
            return lbx_router.reject(saturation.shed_status, headers)

        ranked = ranking.rank(scored, self.rotation, len(backends))
        self.rotation += 1
        best = ranked[0].index
        if points and best < len(self.backend_keys):
            self.index.record(points, self.backend_keys[best], now_us)
        fallbacks = [c.index for c in ranked[1:1 + config.fallbacks]]
        return lbx_router.pick(best, fallbacks=fallbacks)

    def _score(self, index: int, backends: Backends, held: dict[int, int], block_count: int,
               now_us: int) -> ranking.Scored:
        """Candidate `index`'s score, load and saturation for this request."""
        config = self.settings
        names = config.signals
        age_ms = backends.signal_age_ms(index)
        fresh = age_ms is not None and age_ms <= names.max_age_ms

        def read(name: str) -> Optional[float]:
            # A signal missing, not configured or too old counts as unknown.
            return backends.signal(index, name) if fresh else None

        kv_cache = read(names.kv_cache) or 0.0
        in_flight = backends.in_flight(index)
        scraped_waiting = read(names.waiting)
        if scraped_waiting is None:
            # Without a scraped queue only the in-flight term sees load.
            waiting_now = waiting_if_sent = 0.0
        else:
            waiting_now, waiting_if_sent = self.queues.estimate(
                index, scraped_waiting, read(names.running), age_ms or 0.0, in_flight, now_us)
        saturated = (waiting_now >= config.saturation.waiting
                     or kv_cache >= config.saturation.kv_cache)
        key = self.backend_keys[index] if index < len(self.backend_keys) else None
        prefix_share = held.get(key, 0) / block_count if block_count else 0.0
        return ranking.Scored(
            index,
            ranking.score(config.weights, prefix_share, waiting_if_sent, in_flight, kv_cache),
            waiting_if_sent, float(in_flight), saturated)


def _usable(eligible: list[int], backends: Backends, retry: RetryContext) -> list[int]:
    """The `eligible` backends usable for this attempt: healthy and not yet tried, or healthy at
    all once every healthy one was tried (a retry still has somewhere to go)."""
    healthy = [i for i in eligible if i < len(backends) and backends.healthy(i)]
    untried = [i for i in healthy if i not in retry.tried]
    return untried or healthy


# componentize-py looks for the export class `Router` in this module.
Router = lbx_router.export(LlmRouter)
