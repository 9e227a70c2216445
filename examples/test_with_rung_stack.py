"""A test of your own against the real stack: the `rung_stack` fixture comes with rung.

pytest examples/test_with_rung_stack.py
"""

from rung.testing import RungStack


def test_a_paused_replica_serves_stale_reads(rung_stack: RungStack) -> None:
    """While replay is paused on replica1, a new row is on the primary but not on the replica."""
    rung_stack.sql("primary", "CREATE TABLE IF NOT EXISTS notes (body text)")
    rung_stack.wait_for_replicas()  # the table exists on the replica too
    rung_stack.pause_replay(0)
    try:
        rung_stack.sql("primary", "INSERT INTO notes VALUES ('written after the pause')")
        stale = rung_stack.sql("replica1", "SELECT count(*) FROM notes WHERE body LIKE 'written%'")
        fresh = rung_stack.sql("primary", "SELECT count(*) FROM notes WHERE body LIKE 'written%'")
        assert int(stale) < int(fresh)
    finally:
        rung_stack.resume_replay(0)
