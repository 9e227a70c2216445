"""Click ids: UUIDv7, so the clicks table's key grows at its end."""

from __future__ import annotations

import uuid

from rung_links.clicks import new_id


def test_ids_are_version_7_uuids_in_time_order() -> None:
    ids = [new_id() for _ in range(1000)]
    parsed = [uuid.UUID(i) for i in ids]
    assert {(u.version, u.variant) for u in parsed} == {(7, uuid.RFC_4122)}
    assert len(set(ids)) == 1000
    stamps = [u.int >> 80 for u in parsed]
    assert stamps == sorted(stamps)
