"""The prompt as prefix hashes, the way vLLM's prefix cache and llm-d's approximate prefix
scorer see it: the prompt stream is cut into fixed-size blocks, and the hash at block `k` covers
blocks `1..=k`, so one hash names a whole prefix. One streaming hash read out at each depth
(`digest()` does not end a hashlib object) chains the blocks.

Only whole blocks count (a model server caches whole blocks), up to `max_blocks`. Only some
depths are kept, as `Checkpoint`s: the powers of two and the last, as in the Rust plugin, so a
conversation's next turn still matches its previous turn at the deepest power of two they
share, for a few key-value reads.

**Not the Rust plugin's hash:** this is BLAKE2b with 8-byte digests (Python's `hashlib`), the
Rust plugin uses xxh64; the two never share index entries, and need not.
"""

import hashlib
from typing import NamedTuple


class Checkpoint(NamedTuple):
    """A prefix of the prompt that the index knows by its hash."""

    #: Length of the prefix, in blocks (>= 1).
    depth: int
    #: Hash of those blocks (64 bits).
    hash: int


def checkpoints(prompt: bytes, block_bytes: int, max_blocks: int) -> tuple[int, list[Checkpoint]]:
    """The number of whole blocks hashed (0: nothing to match) and the checkpoints of `prompt`:
    the hash of its first `k` blocks for each power of two `k` and for the last whole block,
    shallowest first."""
    blocks = min(len(prompt) // block_bytes, max_blocks)
    if blocks == 0:
        return 0, []  # nothing to hash: most requests without a body end here, cheaply
    # The block size starts the hash: hashes of different block sizes stay apart (the index in
    # lbx's store outlives a configuration change).
    hasher = hashlib.blake2b(block_bytes.to_bytes(4, "little"), digest_size=8)
    points: list[Checkpoint] = []
    hashed, depth = 0, 1
    while depth <= blocks:
        hasher.update(prompt[hashed * block_bytes:depth * block_bytes])
        hashed = depth
        points.append(Checkpoint(depth, int.from_bytes(hasher.digest(), "little")))
        depth = depth * 2 if depth == blocks or depth * 2 <= blocks else blocks
    return blocks, points
