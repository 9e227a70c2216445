"""Event ids (pure logic)."""

import uuid

from rung.queue import ids

new_id = ids.new_id


def test_ids_are_uuid7_strings() -> None:
    parsed = uuid.UUID(new_id())
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_ids_are_unique_and_ordered_by_millisecond() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == 10_000
    millis = [uuid.UUID(i).int >> 80 for i in ids]
    assert millis == sorted(millis)
