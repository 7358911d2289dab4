"""A bounded set of recently seen record keys (duplicate detection at the gateways).

First line of defence only: it forgets the oldest keys beyond its bound and is per
process. Every event keeps its ``record_id``, so the database sink's primary key
deduplicates for good.
"""

from __future__ import annotations

__all__ = ["RecentKeys"]


class RecentKeys:
    """Insertion-ordered set with FIFO eviction beyond ``capacity`` keys (O(1) operations)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._keys: dict[str, None] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        keys = self._keys
        if key in keys:
            return
        keys[key] = None
        if len(keys) > self.capacity:
            del keys[next(iter(keys))]
