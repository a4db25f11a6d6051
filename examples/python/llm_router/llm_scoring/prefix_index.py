"""The approximate prefix index: which backends were recently sent which prompt prefixes, kept
in lbx's key-value store (`lbx_router.kv`), so every instance of the plugin shares it and a hot
swap keeps it.

**Layout: a set-associative cache**, as in the Rust plugin (plugins/llm_router/src/index.rs).
An entry is one checkpoint hash, the time it was last written (lbx's clock, shared by the
instances) and the ids of up to `MAX_HOLDERS` backends sent that prefix, most recent first. A
backend is named by a 64-bit hash of its configured id, never by its index, so affinity
survives a reordering of the backend list. Entries live in `capacity / 4` sets of `WAYS` (key
`<key_prefix>s<set in hex>`, the set being the hash modulo their number); a new entry replaces
the least recently written one of its set. So the index never holds more than `capacity`
entries, and the store stays bounded. A set is stored in the Rust plugin's byte layout.

**Simplified:** a lookup reads the set of every checkpoint (at most 10 for 256 blocks; the Rust
plugin binary-searches about 3), and a decision writes every checkpoint of the prompt back as
held by the chosen backend, which also keeps a prompt in use from being evicted (the Rust
plugin writes only what changed, plus a touch when newer entries crowd a prefix). Racing
instances can lose an update; the index is approximate by design.
"""

import hashlib
import struct
from typing import NamedTuple, Sequence

import lbx_router

from .blocks import Checkpoint

#: Backends remembered per prefix.
MAX_HOLDERS = 4
#: Entries per set.
WAYS = 4

_HEAD = struct.Struct("<QQB")  # hash, stamp, holder count
_HOLDER = struct.Struct("<Q")


def backend_key(backend_id: str) -> int:
    """The 64-bit name of a backend in the index: a hash of its configured id."""
    return int.from_bytes(hashlib.blake2b(backend_id.encode(), digest_size=8).digest(), "little")


class Entry(NamedTuple):
    """One prefix, when it was last written, and who holds it (most recent first)."""

    hash: int
    stamp_us: int
    holders: tuple[int, ...]


def decode(value: bytes) -> list[Entry]:
    """The entries of a stored set; what cannot be read (another program's bytes) is dropped."""
    entries: list[Entry] = []
    at = 0
    while len(entries) < WAYS and at + _HEAD.size <= len(value):
        hash_, stamp, count = _HEAD.unpack_from(value, at)
        at += _HEAD.size
        if not 1 <= count <= MAX_HOLDERS or at + count * _HOLDER.size > len(value):
            break
        holders = tuple(_HOLDER.unpack_from(value, at + i * _HOLDER.size)[0] for i in range(count))
        at += count * _HOLDER.size
        entries.append(Entry(hash_, stamp, holders))
    return entries


def encode(entries: Sequence[Entry]) -> bytes:
    """A set as stored."""
    out = bytearray()
    for entry in entries:
        out += _HEAD.pack(entry.hash, entry.stamp_us, len(entry.holders))
        for holder in entry.holders:
            out += _HOLDER.pack(holder)
    return bytes(out)


def put(entries: list[Entry], hash_: int, holder: int, now_us: int) -> None:
    """Writes `hash_` as held first by `holder` at `now_us` into a set: updates its entry, or
    replaces the least recently written one when the set is full."""
    for at, entry in enumerate(entries):
        if entry.hash == hash_:
            others = tuple(h for h in entry.holders if h != holder)
            entries[at] = Entry(hash_, now_us, ((holder,) + others)[:MAX_HOLDERS])
            return
    if len(entries) >= WAYS:
        entries.remove(min(entries, key=lambda e: e.stamp_us))
    entries.append(Entry(hash_, now_us, (holder,)))


class PrefixIndex:
    """The index as one plugin instance reaches it; the sets one decision read are kept from
    its `lookup` to its `record` (each set is read and written at most once per decision)."""

    def __init__(self, key_prefix: str, capacity: int) -> None:
        self.key_prefix = key_prefix
        self.sets = max(1, -(-capacity // WAYS))  # ceil(capacity / WAYS)
        self._read: dict[int, list[Entry]] = {}
        self._warned_refused = False

    def _set(self, hash_: int) -> list[Entry]:
        number = hash_ % self.sets
        entries = self._read.get(number)
        if entries is None:
            stored = lbx_router.kv.get(self._key(number))
            entries = self._read[number] = decode(stored) if stored else []
        return entries

    def _key(self, number: int) -> str:
        return f"{self.key_prefix}s{number:x}"

    def lookup(self, points: Sequence[Checkpoint]) -> dict[int, int]:
        """For each backend (by `backend_key`) known to hold a prefix of this prompt: the
        deepest such prefix, in blocks."""
        self._read = {}
        held: dict[int, int] = {}
        for point in points:
            for entry in self._set(point.hash):
                if entry.hash == point.hash:
                    for holder in entry.holders:
                        held[holder] = max(held.get(holder, 0), point.depth)
        return held

    def record(self, points: Sequence[Checkpoint], holder: int, now_us: int) -> None:
        """Records that `holder` was sent the prompt of `points`, after `lookup` of them."""
        changed = set()
        for point in points:
            put(self._set(point.hash), point.hash, holder, now_us)
            changed.add(point.hash % self.sets)
        for number in changed:
            try:
                lbx_router.kv.set(self._key(number), encode(self._read[number]))
            except lbx_router.KvError as refused:
                self._warn_refused(refused.reason)
                break
        self._read = {}

    def _warn_refused(self, reason: str) -> None:
        if not self._warned_refused:
            self._warned_refused = True
            lbx_router.log(
                lbx_router.LogLevel.WARN,
                f"python llm_router: the key-value store refused a write to the prefix index "
                f"({reason}): raise [plugin] kv_max_bytes or lower plugin.config.prefix.capacity;"
                f" prefix affinity goes on with what is stored")
