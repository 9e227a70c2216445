"""Accounts through the HTTP contract: signup, login, logout, me (sessions in Redis)."""

from __future__ import annotations

from tests.links.support import PASSWORD, Service


async def test_signup_answers_201_with_the_account(service: Service) -> None:
    created = await service.client.post(
        "/api/signup", json={"email": "Ann@Example.com", "password": PASSWORD}
    )
    assert created.status_code == 201
    assert created.json() == {"id": created.json()["id"], "email": "ann@example.com"}
    assert isinstance(created.json()["id"], int)


async def test_signup_with_a_taken_email_is_409(service: Service) -> None:
    body = {"email": "ann@example.com", "password": PASSWORD}
    assert (await service.client.post("/api/signup", json=body)).status_code == 201
    again = await service.client.post("/api/signup", json={**body, "email": "ANN@example.com"})
    assert again.status_code == 409
    assert again.json() == {"detail": "that email already has an account"}


async def test_login_sets_a_session_cookie_and_me_names_the_user(service: Service) -> None:
    body = {"email": "ann@example.com", "password": PASSWORD}
    await service.client.post("/api/signup", json=body)
    login = await service.client.post("/api/login", json=body)
    assert login.status_code == 200
    assert login.json() == {"email": "ann@example.com"}
    cookie = login.headers["set-cookie"]
    assert cookie.startswith("rung_session=") and "HttpOnly" in cookie
    me = await service.client.get("/api/me")
    assert (me.status_code, me.json()) == (200, {"email": "ann@example.com"})


async def test_login_regenerates_the_session_id(service: Service) -> None:
    """A session id planted before login is not the one that is logged in (no fixation)."""
    body = {"email": "ann@example.com", "password": PASSWORD}
    await service.client.post("/api/signup", json=body)
    first = (await service.client.post("/api/login", json=body)).cookies["rung_session"]
    second = (await service.client.post("/api/login", json=body)).cookies["rung_session"]
    assert first != second
    planted = await service.client.get("/api/me", headers={"cookie": f"rung_session={first}"})
    assert planted.status_code == 401


async def test_a_wrong_password_or_an_unknown_email_is_401(service: Service) -> None:
    await service.client.post(
        "/api/signup", json={"email": "ann@example.com", "password": PASSWORD}
    )
    for body in (
        {"email": "ann@example.com", "password": "not the password"},
        {"email": "bob@example.com", "password": PASSWORD},
    ):
        login = await service.client.post("/api/login", json=body)
        assert (login.status_code, login.json()) == (401, {"detail": "wrong email or password"})
    assert (await service.client.get("/api/me")).status_code == 401


async def test_logout_answers_204_and_ends_the_session(service: Service) -> None:
    await service.signup_and_login()
    logout = await service.client.post("/api/logout")
    assert logout.status_code == 204
    assert logout.content == b""
    assert (await service.client.get("/api/me")).status_code == 401


async def test_me_without_a_session_is_401(service: Service) -> None:
    me = await service.client.get("/api/me")
    assert (me.status_code, me.json()) == (401, {"detail": "log in first"})


async def test_passwords_are_stored_as_salted_scrypt_hashes(service: Service) -> None:
    for email in ("ann@example.com", "bob@example.com"):
        await service.client.post("/api/signup", json={"email": email, "password": PASSWORD})
    hashes = await service.parts.db.fetch("SELECT password_hash FROM users", primary=True)
    stored = [row["password_hash"] for row in hashes]
    assert all(h.startswith("scrypt$16384$8$1$") for h in stored)
    assert stored[0] != stored[1]  # same password, different salts
    assert all(PASSWORD not in h for h in stored)
