"""The host's services to a plugin: the log, the monotonic clock and the key-value store, behind
one replaceable `Services` object.

Under plain CPython (tests) the services are `MemoryServices`: an in-memory store with the host's
limits, a log kept as a list, a clock that moves only when a test advances it. The Wasm build's
glue (`lbx_router.component`) installs services that call the host instead, so a plugin's code
is the same in both.
"""

from __future__ import annotations

from enum import Enum
from typing import Optional


class LogLevel(Enum):
    """Severity of a log line."""

    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


class KvError(Exception):
    """A write the host refused: `reason` is `"key-too-long"` or `"store-full"`."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"kv write refused: {reason}")
        self.reason = reason


#: The longest key the host accepts, in bytes (wit/router.wit, `kv-error.key-too-long`).
MAX_KEY_BYTES = 256


class Services:
    """What the host provides; `MemoryServices` and the glue's services implement it."""

    def log(self, level: LogLevel, message: str) -> None:
        """Write a line to lbx's log."""
        raise NotImplementedError

    def now_us(self) -> int:
        """Microseconds on a monotonic clock shared by the plugin's instances."""
        raise NotImplementedError

    def kv_get(self, key: str) -> Optional[bytes]:
        """The value under `key`, if any."""
        raise NotImplementedError

    def kv_set(self, key: str, value: bytes) -> None:
        """Store `value` under `key`; raises `KvError` when refused."""
        raise NotImplementedError

    def kv_insert(self, key: str, value: bytes) -> bool:
        """Store `value` only if `key` is absent; true if stored. Raises `KvError` when refused."""
        raise NotImplementedError

    def kv_delete(self, key: str) -> bool:
        """Remove `key`; true if it existed."""
        raise NotImplementedError

    def kv_increment(self, key: str, delta: int) -> int:
        """Add `delta` to the counter under `key` and return the new value."""
        raise NotImplementedError


class MemoryServices(Services):
    """The host's services in memory, with the host's rules: keys of at most 256 bytes, a size
    cap (`max_bytes`, none by default), counters as 8 little-endian bytes."""

    def __init__(self, max_bytes: Optional[int] = None) -> None:
        self.store: dict[str, bytes] = {}
        self.lines: list[tuple[LogLevel, str]] = []
        self.clock_us = 0
        self.max_bytes = max_bytes

    def log(self, level: LogLevel, message: str) -> None:
        self.lines.append((level, message))

    def now_us(self) -> int:
        return self.clock_us

    def kv_get(self, key: str) -> Optional[bytes]:
        return self.store.get(key)

    def _check(self, key: str, value: bytes) -> None:
        if len(key.encode()) > MAX_KEY_BYTES:
            raise KvError("key-too-long")
        if self.max_bytes is not None:
            size = sum(len(k.encode()) + len(v) for k, v in self.store.items() if k != key)
            if size + len(key.encode()) + len(value) > self.max_bytes:
                raise KvError("store-full")

    def kv_set(self, key: str, value: bytes) -> None:
        value = bytes(value)
        self._check(key, value)
        self.store[key] = value

    def kv_insert(self, key: str, value: bytes) -> bool:
        if key in self.store:
            return False
        self.kv_set(key, value)
        return True

    def kv_delete(self, key: str) -> bool:
        return self.store.pop(key, None) is not None

    def kv_increment(self, key: str, delta: int) -> int:
        old = self.store.get(key, b"")
        current = int.from_bytes(old, "little", signed=True) if len(old) == 8 else 0
        new = (current + delta + 2**63) % 2**64 - 2**63  # wraps like the host's i64
        self.kv_set(key, new.to_bytes(8, "little", signed=True))
        return new


_services: Services = MemoryServices()


def install(services: Services) -> None:
    """Make `services` the host's services (the glue does this in the Wasm build; tests may
    install a fresh `MemoryServices`)."""
    global _services
    _services = services


def services() -> Services:
    """The services in use."""
    return _services


def log(level: LogLevel, message: str) -> None:
    """Write a line to lbx's log, tagged with the plugin."""
    _services.log(level, message)


def now_us() -> int:
    """Microseconds on a monotonic clock shared by every instance of the plugin."""
    return _services.now_us()
