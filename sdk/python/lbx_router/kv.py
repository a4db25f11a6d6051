"""The host's small key-value store, shared by every instance of the plugin and kept across hot
swaps: `kv.get`, `kv.set`, `kv.insert`, `kv.delete`, `kv.increment`. Bounded: the host refuses
writes past its size (`KvError`)."""

from __future__ import annotations

from typing import Optional, Union

from . import host
from .host import KvError

__all__ = ["KvError", "delete", "get", "increment", "insert", "set"]


def _bytes(value: Union[bytes, str]) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def get(key: str) -> Optional[bytes]:
    """The value stored under `key`, if any."""
    return host._services.kv_get(key)


def set(key: str, value: Union[bytes, str]) -> None:  # noqa: A001 - mirrors the contract's name
    """Store `value` (bytes, or text as UTF-8) under `key`; raises `KvError` when refused."""
    host._services.kv_set(key, _bytes(value))


def insert(key: str, value: Union[bytes, str]) -> bool:
    """Store `value` only if `key` is absent; true if it was stored."""
    return host._services.kv_insert(key, _bytes(value))


def delete(key: str) -> bool:
    """Remove `key`; true if it existed."""
    return host._services.kv_delete(key)


def increment(key: str, delta: int = 1) -> int:
    """Atomically add `delta` to the counter under `key` (absent counts as 0); the new value."""
    return host._services.kv_increment(key, delta)
