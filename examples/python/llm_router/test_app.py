"""Tests of the Python LLM router on the SDK's native test kit (no Wasm build), mirroring the
Rust plugin's (plugins/llm_router/src/tests.rs): model filter, prefix affinity shared through
the key-value store, queue and KV-cache signals, saturation and shedding, ranked fallbacks,
configuration.

Run: python3 -m pytest -q examples/python/llm_router
"""

import json
from typing import Optional, Sequence

import pytest
from lbx_router import testkit as t

from app import LlmRouter

VLLM = ["vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"]
WAITING_AND_RUNNING = ["vllm:num_requests_waiting", "vllm:num_requests_running"]


@pytest.fixture(autouse=True)
def fresh_host():
    """Each test gets an empty key-value store (shared by the routers it creates, as lbx's store
    is by a plugin's instances and versions) and a clock at 0."""
    return t.fresh_host()


def ids(n: int) -> list:
    return [t.labeled(f"gpu-{i}") for i in range(n)]


def router(config: Optional[dict] = None, infos: Sequence = (), signal_names=()) -> t.Plugin:
    return t.Plugin(LlmRouter, config or {}, infos, signal_names)


def chat(model: str, messages: Sequence[tuple[str, str]]) -> t.FakeRequest:
    """A chat completion request for `model` with these `(role, content)` messages."""
    body = {"model": model, "messages": [{"role": r, "content": c} for r, c in messages],
            "stream": True}
    return t.post("/v1/chat/completions", body=body)


def system(n: int) -> str:
    """A system prompt several blocks long, different for each `n`."""
    return f"You are assistant number {n}. " * 12


def turns(n: int) -> tuple[t.FakeRequest, t.FakeRequest]:
    """The first turn of conversation `n`, and its second turn."""
    question = f"Conversation {n}: tell me about the history of load balancing, please."
    first = chat("m", [("system", system(n)), ("user", question)])
    second = chat("m", [
        ("system", system(n)), ("user", question),
        ("assistant", "Round robin came first, then least connections, and much later, "
                      "prefix-aware routing for LLMs."),
        ("user", "And what came after that?"),
    ])
    return first, second


def pick(plugin: t.Plugin, request, stats, signals=None) -> int:
    decision = plugin.choose(request, stats, signals=signals)
    index = t.picked(decision)
    assert index is not None, f"expected a pick, got {decision!r}"
    return index


def scraped(names: Sequence[str], rows: Sequence[Sequence[float]], age_ms: float = 10.0):
    """The host's signals for one backend per row: its values for `names`, scraped `age_ms`
    ago."""
    return t.signals(names, {i: (age_ms, row) for i, row in enumerate(rows)}, len(rows))


# ---- model filter ------------------------------------------------------------------------------

def model_pool() -> list:
    return [t.labeled("a", model="llama-3-8b"), t.labeled("b", model="llama-3-8b,mistral-7b"),
            t.labeled("c", model="mistral-7b")]


def test_a_model_goes_only_to_the_backends_serving_it_and_its_fallbacks_too() -> None:
    plugin = router({}, model_pool())
    for _ in range(20):
        llama = plugin.choose(chat("llama-3-8b", [("user", "hi")]), t.all_healthy(3))
        assert set(t.attempt_order(llama)) == {0, 1}
        mistral = plugin.choose(chat("mistral-7b", [("user", "hi")]), t.all_healthy(3))
        assert set(t.attempt_order(mistral)) == {1, 2}


def test_a_model_no_backend_serves_is_rejected_with_the_configured_status() -> None:
    request = chat("gpt-4", [("user", "hi")])
    assert t.rejected(router({}, model_pool()).choose(request, t.all_healthy(3))) == 404
    configured = router({"unknown_model_status": 400}, model_pool())
    assert t.rejected(configured.choose(request, t.all_healthy(3))) == 400


def test_backends_without_a_model_label_serve_any_model() -> None:
    plugin = router({}, model_pool() + [t.labeled("any")])
    assert pick(plugin, chat("gpt-4", [("user", "hi")]), t.all_healthy(4)) == 3


def test_a_model_whose_backends_are_all_down_is_refused_rather_than_sent_to_another_model() -> None:
    stats = [t.backend(), t.backend(healthy=False), t.backend(healthy=False)]
    decision = router({}, model_pool()).choose(chat("mistral-7b", [("user", "hi")]), stats)
    assert t.rejected(decision) == 503


def test_a_retry_goes_to_another_backend_of_the_same_model() -> None:
    decision = router({}, model_pool()).choose(
        chat("llama-3-8b", [("user", "hi")]), t.all_healthy(3), t.retry([0]))
    assert t.attempt_order(decision) == [1]


# ---- prefix affinity ---------------------------------------------------------------------------

def test_the_next_turn_of_a_conversation_goes_back_to_the_backend_that_has_its_prefix() -> None:
    plugin = router({}, ids(4))
    first, second = turns(1)
    home = pick(plugin, first, t.all_healthy(4))
    # Home is now a little busier than the others: the cached prefix still wins.
    in_flight = [0] * 4
    in_flight[home] = 3
    for _ in range(5):
        assert pick(plugin, second, t.loads(in_flight)) == home
        assert pick(plugin, first, t.loads(in_flight)) == home
    # Another conversation has no reason to go there.
    assert pick(plugin, turns(2)[0], t.loads(in_flight)) != home


def test_affinity_gives_way_when_its_backend_is_much_busier() -> None:
    plugin = router({}, ids(2))
    first, second = turns(1)
    home = pick(plugin, first, t.all_healthy(2))
    in_flight = [0, 0]
    in_flight[home] = 40
    assert pick(plugin, second, t.loads(in_flight)) != home


def test_the_index_is_shared_by_instances_and_survives_a_new_version_of_the_plugin() -> None:
    first, second = turns(1)
    home = pick(router({}, ids(4)), first, t.all_healthy(4))
    # A new instance (another worker, or the version a hot swap loads) knows the prefix: it
    # lives in the key-value store, not in the instance.
    in_flight = [1] * 4
    in_flight[home] = 3
    assert pick(router({}, ids(4)), second, t.loads(in_flight)) == home


def test_affinity_follows_the_backend_id_when_the_backend_list_is_reordered() -> None:
    first, second = turns(1)
    plugin = router({}, ids(3))
    home = pick(plugin, first, t.all_healthy(3))
    plugin.backends_changed(list(reversed(ids(3))))
    in_flight = [0] * 3
    in_flight[2 - home] = 2
    assert pick(plugin, second, t.loads(in_flight)) == 2 - home


def test_a_prefix_is_forgotten_after_capacity_other_prompts() -> None:
    plugin = router({"prefix": {"capacity": 16}}, ids(2))
    first, second = turns(1)
    home = pick(plugin, first, t.all_healthy(2))
    in_flight = [0, 0]
    in_flight[home] = 1
    assert pick(plugin, second, t.loads(in_flight)) == home, "remembered"
    for n in range(2, 20):
        t.advance_clock(1_000)  # later writes are more recent: they evict the older ones
        pick(plugin, turns(n)[0], t.all_healthy(2))
    assert pick(plugin, second, t.loads(in_flight)) != home, "forgotten"


def test_the_index_stays_within_its_capacity_in_the_store(fresh_host) -> None:
    plugin = router({"prefix": {"capacity": 16, "key_prefix": "px:"}}, ids(2))
    for n in range(50):
        pick(plugin, turns(n)[1], t.all_healthy(2))
    keys = [k for k in fresh_host.store if k.startswith("px:")]
    assert 0 < len(keys) <= 4, keys  # 16 entries in sets of 4


def test_a_body_cut_at_the_prefix_limit_is_routed_by_load_without_the_model_filter() -> None:
    # The documented simplification: a cut body is not JSON, so neither model nor prompt.
    whole = json.dumps({"model": "gpt-4", "messages": [{"role": "user", "content": "x" * 200}]})
    cut = t.post("/v1/chat/completions", body=whole[:100])
    assert pick(router({}, model_pool()), cut, t.loads([4, 0, 2])) == 1


def test_garbage_bodies_and_other_paths_are_routed_by_load_never_refused() -> None:
    plugin = router({}, model_pool())
    stats = t.loads([4, 0, 2])
    for body in [b"not json at all", b"{", b"\xff\xfe\x00", b"[]", b'{"model": 7}', b""]:
        assert pick(plugin, t.post("/v1/chat/completions", body=body), stats) == 1, body
    # Only the configured paths are read: an unknown model elsewhere is not refused.
    assert pick(plugin, t.post("/v1/embeddings", body={"model": "gpt-4"}), stats) == 1
    assert pick(plugin, t.get("/v1/models"), stats) == 1


def test_a_completion_prompt_counts_like_messages() -> None:
    plugin = router({}, ids(3))
    prompt = "Once upon a time, in a land of load balancers, " * 6
    request = t.post("/v1/completions", body={"model": "m", "prompt": prompt})
    home = pick(plugin, request, t.all_healthy(3))
    in_flight = [0] * 3
    in_flight[home] = 2
    longer = t.post("/v1/completions", body={"model": "m", "prompt": prompt + "there lived"})
    assert pick(plugin, longer, t.loads(in_flight)) == home


# ---- signals and saturation --------------------------------------------------------------------

def test_the_scraped_queue_and_kv_cache_are_found_by_name_in_any_order() -> None:
    reversed_names = [VLLM[1], VLLM[0]]
    plugin = router({}, ids(3), reversed_names)
    signals = scraped(reversed_names, [[0.1, 3.0], [0.7, 0.0], [0.1, 0.0]], age_ms=100.0)
    # 2 is idle; 1 has 70% of its KV cache in use (-2 x 0.7); 0 has 3 waiting (-4 x 3).
    decision = plugin.choose(chat("m", [("user", "hi")]), t.all_healthy(3), signals=signals)
    assert t.attempt_order(decision) == [2, 1, 0]


def test_a_saturated_backend_is_avoided_even_with_the_prefix() -> None:
    plugin = router({}, ids(2), VLLM[:1])
    first, second = turns(1)
    home = pick(plugin, first, t.all_healthy(2))
    waiting = [[0.0], [0.0]]
    waiting[home] = [5.0]
    assert pick(plugin, second, t.all_healthy(2), scraped(VLLM[:1], waiting, 50.0)) != home


def test_a_conversation_stays_with_a_busy_replica_until_requests_wait_there() -> None:
    plugin = router({}, ids(2), VLLM[:1])
    first, second = turns(1)
    home = pick(plugin, first, t.all_healthy(2))
    in_flight = [0, 0]
    # Four running at home, none waiting: half the prompt's blocks held there (the first turn's
    # 4 of the second's 8) are worth more than a free replica.
    in_flight[home] = 4
    assert pick(plugin, second, t.loads(in_flight), scraped(VLLM[:1], [[0.0], [0.0]])) == home
    # One waiting there: a place in a queue costs more than recomputing the prefix.
    waiting = [[0.0], [0.0]]
    waiting[home] = [1.0]
    t.advance_clock(1_000_000)  # a new scrape
    assert pick(plugin, second, t.loads(in_flight), scraped(VLLM[:1], waiting)) != home


def test_a_replica_whose_slots_are_full_loses_to_one_with_a_free_slot() -> None:
    plugin = router({"slots": 4}, ids(2), WAITING_AND_RUNNING)
    first, second = turns(1)
    home = pick(plugin, first, t.all_healthy(2))
    other = 1 - home

    def running(at_home: int):
        rows = [[0.0, 0.0], [0.0, 0.0]]
        rows[home] = [0.0, float(at_home)]
        in_flight = [0, 0]
        in_flight[home] = at_home
        return t.loads(in_flight), scraped(WAITING_AND_RUNNING, rows)

    # Three of four slots in use: the request runs at once there, where its prefix is.
    assert pick(plugin, second, *running(3)) == home
    # All four in use: nothing waits yet, but this request would.
    t.advance_clock(1_000_000)
    assert pick(plugin, second, *running(4)) == other


def test_requests_sent_since_the_scrape_count_toward_saturation() -> None:
    # Load terms off: only saturation (5 waiting) can move the request off backend 0.
    plugin = router({"weights": {"queue": 0, "in_flight": 0}}, ids(2), VLLM)
    request = chat("m", [("user", "hi")])
    # Same scrape throughout: backend 0 had 3 waiting, backend 1 a fuller KV cache.
    signals = scraped(VLLM, [[3.0, 0.0], [4.0, 0.1]])
    for _ in range(2):
        assert pick(plugin, request, t.loads([0, 0]), signals) == 0
    # Two more in flight at backend 0 since the scrape: 5 waiting now, saturated.
    assert pick(plugin, request, t.loads([2, 0]), signals) == 1


def test_when_every_backend_is_saturated_the_least_loaded_is_picked() -> None:
    plugin = router({}, ids(3), VLLM)
    signals = scraped(VLLM, [[9.0, 0.2], [6.0, 0.2], [2.0, 0.95]])
    decision = plugin.choose(chat("m", [("user", "hi")]), t.loads([0, 0, 0]), signals=signals)
    assert t.attempt_order(decision) == [2, 1, 0]


def test_with_shedding_a_request_finding_every_backend_saturated_is_refused() -> None:
    request = chat("m", [("user", "hi")])
    saturated = scraped(VLLM, [[5.0, 0.1], [0.0, 0.85]])
    plugin = router({"saturation": {"shed": True}}, ids(2), VLLM)
    decision = plugin.choose(request, t.all_healthy(2), signals=saturated)
    assert t.rejected(decision) == 429
    assert t.downstream_header(decision, "retry-after") == "1"
    # One with room is enough.
    room = scraped(VLLM, [[5.0, 0.1], [0.0, 0.5]])
    assert pick(plugin, request, t.all_healthy(2), room) == 1
    custom = router({"saturation": {"shed": True, "shed_status": 503, "retry_after": 0}},
                    ids(2), VLLM)
    decision = custom.choose(request, t.all_healthy(2), signals=saturated)
    assert t.rejected(decision) == 503
    assert t.downstream_header(decision, "retry-after") is None, "no retry-after when it is 0"


def test_stale_scrapes_are_ignored() -> None:
    plugin = router({}, ids(2), VLLM[:1])
    signals = t.signals(VLLM[:1], {0: (60_000.0, [50.0]), 1: (10.0, [1.0])}, 2)
    assert pick(plugin, chat("m", [("user", "hi")]), t.all_healthy(2), signals) == 0


# ---- ranking and fallbacks ---------------------------------------------------------------------

def test_without_signals_in_flight_counts_decide_and_fallbacks_follow_the_score() -> None:
    request = chat("m", [("user", "hi")])
    stats = t.loads([3, 0, 5, 1])
    decision = router({}, ids(4)).choose(request, stats)
    assert t.attempt_order(decision) == [1, 3, 0], "two fallbacks by default"
    assert t.attempt_order(router({"fallbacks": 1}, ids(4)).choose(request, stats)) == [1, 3]
    assert t.expect_pick(router({"fallbacks": 0}, ids(4)).choose(request, stats)).fallbacks == ()


def test_idle_backends_take_turns_with_new_conversations() -> None:
    plugin = router({}, ids(3))
    picks = [pick(plugin, turns(n)[0], t.all_healthy(3)) for n in range(10, 16)]
    assert picks == [0, 1, 2, 0, 1, 2]


# ---- configuration -----------------------------------------------------------------------------

def test_no_configuration_and_no_body_still_routes() -> None:
    plugin = t.Plugin(LlmRouter, "", ids(3))
    assert pick(plugin, t.get("/"), t.loads([1, 1, 0])) == 2
    assert not plugin.driver.outcomes, "no TTFT learning, so no outcomes asked for"


def test_a_bad_config_is_refused_naming_each_key() -> None:
    refusal = t.refusal(LlmRouter, {
        "paths": ["v1"], "unknown_model_status": 200, "weights": {"queue": -1},
        "prefix": {"block_bytes": 8, "key_prefix": ""}})
    assert refusal is not None
    for expected in [
        "plugin.config.paths[0]: 'v1' is not a path",
        "plugin.config.unknown_model_status: 200 is not an error status",
        "plugin.config.weights.queue: -1.0 is not a weight",
        "plugin.config.prefix.block_bytes: 8 is not within 16..=4096",
        "plugin.config.prefix.key_prefix: '' must be 1 to 32",
    ]:
        assert expected in refusal, refusal


def test_unknown_keys_and_wrong_types_are_refused_naming_the_key() -> None:
    refusal = t.refusal(LlmRouter, {"weights": {"prefx": 1}})
    assert refusal is not None and "plugin.config.weights.prefx: unknown key" in refusal
    refusal = t.refusal(LlmRouter, {"saturation": {"shed": "yes"}, "slots": True})
    assert refusal is not None
    assert "plugin.config.saturation.shed: 'yes' is not true or false" in refusal, refusal
    assert "plugin.config.slots: True is not a number" in refusal, refusal
    assert t.refusal(LlmRouter, "not json") is not None
    assert t.refusal(LlmRouter, {"weights": {"prefix": 5}, "saturation": {"shed": True}}) is None


def test_a_key_of_the_rust_plugin_left_out_of_this_port_is_refused_with_the_reason() -> None:
    refusal = t.refusal(LlmRouter, {"weights": {"ttft": 1}})
    assert refusal is not None
    assert "plugin.config.weights.ttft: not supported by the Python port" in refusal


# ---- the parts -------------------------------------------------------------------------------

def test_the_prompt_stream_tells_roles_apart_and_reads_text_parts() -> None:
    from llm_scoring import prompt

    as_system = prompt.read({"messages": [{"role": "system", "content": "same text"}]})
    as_user = prompt.read({"messages": [{"content": "same text", "role": "user"}]})
    assert as_system[1] != as_user[1]
    parts = prompt.read({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "same "}, "text"]}]})
    assert parts == ("m", as_user[1]), "text parts are read back to back"
    assert prompt.read({"model": 7, "prompt": ["a", 12, True]}) == (None, b"a\x1e12\x1e")


def test_checkpoints_are_the_powers_of_two_and_the_last_whole_block() -> None:
    from llm_scoring import blocks

    count, points = blocks.checkpoints(bytes(16 * 11 + 3), 16, 100)
    assert count == 11 and [p.depth for p in points] == [1, 2, 4, 8, 11]
    assert blocks.checkpoints(b"short", 16, 100) == (0, [])
    same = blocks.checkpoints(b"a" * 32 + b"b" * 32, 16, 100)[1]
    other = blocks.checkpoints(b"a" * 32 + b"c" * 32, 16, 100)[1]
    assert same[:2] == other[:2] and same[2] != other[2], "a difference changes what follows"
