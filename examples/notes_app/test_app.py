"""The notes app reads its own writes, with every replica stale (`stale_replicas`): a read
that does not carry the consistency token would go to a replica that lacks the write.
`client` comes first, so the replicas have replayed the emptied table when they stop."""

from rung.testing import AppClient


async def test_a_created_note_can_be_read(client: AppClient, stale_replicas: None) -> None:
    created = await client.post("/notes", json={"body": "buy milk"})
    assert created.status_code == 201
    note_id = created.json()["id"]

    read = await client.get(f"/notes/{note_id}")
    assert read.status_code == 200
    assert read.json() == {"id": note_id, "body": "buy milk"}


async def test_an_update_is_read_back(client: AppClient, stale_replicas: None) -> None:
    note_id = (await client.post("/notes", json={"body": "draft"})).json()["id"]
    await client.patch(f"/notes/{note_id}", json={"body": "final"})

    assert (await client.get(f"/notes/{note_id}")).json()["body"] == "final"


async def test_the_list_shows_new_notes(client: AppClient, stale_replicas: None) -> None:
    for body in ("one", "two"):
        await client.post("/notes", json={"body": body})

    listed = await client.get("/notes")
    assert [note["body"] for note in listed.json()] == ["one", "two"]


async def test_an_unknown_note_is_404(client: AppClient, stale_replicas: None) -> None:
    assert (await client.get("/notes/999999")).status_code == 404
