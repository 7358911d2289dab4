"""The KRaft cluster id the local stack formats its broker with (kneeload.stack.kafka)."""

from __future__ import annotations

import base64

from kneeload.stack.kafka import _kraft_cluster_id


def test_cluster_id_never_reads_as_an_option() -> None:
    # 1 unconstrained draw in 64 starts with '-': 5,000 draws miss that with p ≈ 1e-34
    ids = [_kraft_cluster_id() for _ in range(5_000)]
    assert not [c for c in ids if c.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(c + "==")) == 16 for c in ids)
    assert len(set(ids)) == len(ids)
