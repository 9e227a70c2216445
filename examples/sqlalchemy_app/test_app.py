"""The app reads its own writes with every replica stale (`stale_replicas`): a read that
does not carry the consistency token goes to a replica that lacks the write. `client` comes
first, so the replicas have replayed the emptied tables when they stop."""

from rung.testing import AppClient


async def test_a_created_project_is_read_back(client: AppClient, stale_replicas: None) -> None:
    created = await client.post("/projects", json={"name": "move", "tasks": ["pack", "lift"]})
    assert created.status_code == 201
    assert [t["title"] for t in created.json()["tasks"]] == ["pack", "lift"]  # same request

    read = await client.get(f"/projects/{created.json()['id']}")
    assert read.status_code == 200
    assert read.json() == created.json()


async def test_an_added_task_is_listed(client: AppClient, stale_replicas: None) -> None:
    project = (await client.post("/projects", json={"name": "garden"})).json()
    await client.post(f"/projects/{project['id']}/tasks", json={"title": "dig"})

    read = (await client.get(f"/projects/{project['id']}")).json()
    assert [t["title"] for t in read["tasks"]] == ["dig"]
    assert read["open_tasks"] == 1


async def test_a_finished_task_is_done(client: AppClient, stale_replicas: None) -> None:
    project = (await client.post("/projects", json={"name": "taxes", "tasks": ["file"]})).json()
    task_id = project["tasks"][0]["id"]
    assert (await client.post(f"/tasks/{task_id}/done")).json()["done"] is True

    read = (await client.get(f"/projects/{project['id']}")).json()
    assert read["tasks"][0]["done"] is True
    assert read["open_tasks"] == 0


async def test_an_unknown_project_is_404(client: AppClient, stale_replicas: None) -> None:
    assert (await client.get("/projects/999999")).status_code == 404
