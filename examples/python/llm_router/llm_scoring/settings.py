"""`[plugin.config]` of the Python LLM router: every key optional with the Rust plugin's default
(`{}` is a complete configuration), the same key names, unknown keys refused, and every problem
reported at once, each naming its key (`plugin.config.weights.queue: ...`).

The dataclasses below are the single list of keys: the parser walks their fields, so a key is
known exactly when it has a field here. Keys of the Rust plugin this port does not implement
(`NOT_PORTED`) are refused with the reason, rather than silently ignored.
"""

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

#: Keys of plugins/llm_router that this port leaves out, and why (refused by name).
NOT_PORTED = {
    "weights.ttft": "not supported by the Python port: it does not learn time to first token "
                    "(see examples/python/llm_router/README.md)",
}


@dataclass
class SignalNames:
    """Which `[signals] metrics` the router reads, by name."""

    #: Requests waiting in the backend's queue.
    waiting: str = "vllm:num_requests_waiting"
    #: Requests running at the backend (used with `slots`).
    running: str = "vllm:num_requests_running"
    #: Share of the backend's KV cache in use, 0 to 1.
    kv_cache: str = "vllm:kv_cache_usage_perc"
    #: Older scrapes count as missing, in milliseconds.
    max_age_ms: float = 10_000.0


@dataclass
class Weights:
    """Weights of the terms of a backend's score (the Rust plugin's defaults)."""

    #: Share of the prompt's blocks the backend was sent before (0 to 1).
    prefix: float = 3.0
    #: Each request that would wait there, this one included.
    queue: float = 4.0
    #: Each of lbx's in-flight requests there.
    in_flight: float = 0.25
    #: KV-cache use (0 to 1).
    kv_cache: float = 2.0


@dataclass
class Saturation:
    """When a backend is saturated, and whether requests are shed when all are."""

    #: Estimated waiting requests at which a backend is saturated.
    waiting: float = 5.0
    #: KV-cache use at which a backend is saturated.
    kv_cache: float = 0.8
    #: Reject requests when every candidate is saturated.
    shed: bool = False
    #: The status of a shed request.
    shed_status: int = 429
    #: Seconds a shed client is told to wait (`retry-after`); 0: no such header.
    retry_after: int = 1


@dataclass
class PrefixSettings:
    """The prefix index."""

    #: Bytes of prompt per block (64: 16 tokens of ~4 characters, vLLM's block).
    block_bytes: int = 64
    #: Blocks hashed at most.
    max_blocks: int = 256
    #: Index entries kept in lbx's key-value store.
    capacity: int = 4096
    #: Prefix of the index's keys in the store.
    key_prefix: str = "llm:"


@dataclass
class Settings:
    """The plugin's configuration."""

    #: Request paths whose body is read for a model and a prompt.
    paths: list[str] = field(
        default_factory=lambda: ["/v1/chat/completions", "/v1/completions"])
    #: The backend label listing the models a backend serves.
    model_label: str = "model"
    #: Status answered when no backend serves the request's model.
    unknown_model_status: int = 404
    signals: SignalNames = field(default_factory=SignalNames)
    weights: Weights = field(default_factory=Weights)
    saturation: Saturation = field(default_factory=Saturation)
    prefix: PrefixSettings = field(default_factory=PrefixSettings)
    #: Next-best backends a pick names as fallbacks.
    fallbacks: int = 2
    #: Requests one backend runs at once (vLLM's `--max-num-seqs`); unset: unknown.
    slots: Optional[float] = None


def parse(config: Any) -> Settings:
    """The settings of `config` (parsed JSON, `{}` or None for all defaults); raises
    `ValueError` listing every problem, each under its `plugin.config.` key."""
    problems: list[str] = []
    settings = _read_table(Settings, {} if config is None else config, "", problems)
    if not problems:
        _validate(settings, problems)
    if problems:
        raise ValueError("; ".join(problems))
    return settings


def _problem(problems: list[str], key: str, text: str) -> None:
    problems.append(f"plugin.config.{key}: {text}")


def _read_table(cls: type, table: Any, path: str, problems: list[str]) -> Any:
    """An instance of the dataclass `cls` from `table`, its defaults where a key is absent."""
    if not isinstance(table, dict):
        _problem(problems, path.rstrip(".") or "(top level)", f"{table!r} is not a table")
        return cls()
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        full = f"{path}{key}"
        if full in NOT_PORTED:
            _problem(problems, full, NOT_PORTED[full])
        elif key not in known:
            _problem(problems, full, f"unknown key (known here: {', '.join(sorted(known))})")
        else:
            values[key] = _read_value(hints[key], value, full, problems)
    return cls(**values)


def _is_number(value: Any) -> bool:
    # JSON true/false arrive as bool, which Python counts as an int: not a number here.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_value(kind: Any, value: Any, key: str, problems: list[str]) -> Any:
    """`value` as the field type `kind`, or a problem (and the value unchanged)."""
    if dataclasses.is_dataclass(kind):
        return _read_table(kind, value, f"{key}.", problems)
    if kind is float and _is_number(value):
        return float(value)
    if kind == Optional[float] and (value is None or _is_number(value)):
        return None if value is None else float(value)
    if kind is int and _is_number(value) and float(value).is_integer():
        return int(value)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if kind == list[str] and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    expected = {float: "a number", Optional[float]: "a number", int: "an integer",
                bool: "true or false", str: "a string", list[str]: "a list of strings"}
    _problem(problems, key, f"{value!r} is not {expected.get(kind, kind)}")
    return value


def _validate(s: Settings, problems: list[str]) -> None:
    """The Rust plugin's checks of the values (config.rs, `validate`)."""

    def check(ok: bool, key: str, text: str) -> None:
        if not ok:
            _problem(problems, key, text)

    for i, path in enumerate(s.paths):
        check(path.startswith("/"), f"paths[{i}]", f"{path!r} is not a path; it must start with /")
    check(s.model_label != "", "model_label", "must not be empty")
    for key, status in (("unknown_model_status", s.unknown_model_status),
                        ("saturation.shed_status", s.saturation.shed_status)):
        check(400 <= status <= 599, key, f"{status} is not an error status (400-599)")
    for name, weight in dataclasses.asdict(s.weights).items():
        check(math.isfinite(weight) and weight >= 0, f"weights.{name}",
              f"{weight} is not a weight (a number >= 0)")
    for key, value in (("signals.max_age_ms", s.signals.max_age_ms),
                       ("saturation.waiting", s.saturation.waiting),
                       ("saturation.kv_cache", s.saturation.kv_cache)):
        check(math.isfinite(value) and value > 0, key, f"{value} must be a number > 0")
    if s.slots is not None:
        check(math.isfinite(s.slots) and s.slots >= 1, "slots",
              f"{s.slots} is not a number of requests (>= 1)")
    check(s.saturation.retry_after >= 0, "saturation.retry_after",
          f"{s.saturation.retry_after} is not a number of seconds (>= 0)")
    prefix = s.prefix
    check(16 <= prefix.block_bytes <= 4096, "prefix.block_bytes",
          f"{prefix.block_bytes} is not within 16..=4096")
    check(1 <= prefix.max_blocks <= 4096, "prefix.max_blocks",
          f"{prefix.max_blocks} is not within 1..=4096")
    check(16 <= prefix.capacity <= 1_000_000, "prefix.capacity",
          f"{prefix.capacity} is not within 16..=1000000")
    check(1 <= len(prefix.key_prefix) <= 32 and all(33 <= ord(c) <= 126 for c in prefix.key_prefix),
          "prefix.key_prefix", f"{prefix.key_prefix!r} must be 1 to 32 visible ASCII characters")
    check(0 <= s.fallbacks <= 16, "fallbacks", f"{s.fallbacks} is not within 0..=16")
