"""Accounts: sign up, log in, log out, who am I; sessions in Redis (rung.SessionMiddleware).

    async def my_route(user: CurrentUser) -> ...:      # 401 unless logged in

The session lives on the durable Redis (the queue's), so any instance serves any request
and a restart logs nobody out. Login regenerates the session id (no session fixation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Protocol, cast

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from rung_links.models import Login, Me, Signup, User, errors
from rung_links.passwords import check_password, hash_password
from rung_links.services import Services

SIGNUP = """
INSERT INTO users (email, password_hash) VALUES ($1, $2)
ON CONFLICT (email) DO NOTHING
RETURNING id, email
"""
FIND = "SELECT id, email, password_hash FROM users WHERE email = $1"


class _RungSession(Protocol):
    """Starlette types `request.session` as a dict; rung's session can also regenerate."""

    def regenerate(self) -> None: ...


@dataclass(frozen=True)
class SessionUser:
    id: int
    email: str


async def current_user(request: Request) -> SessionUser:
    """The logged-in user of this request's session; 401 when there is none."""
    user_id, email = request.session.get("user_id"), request.session.get("email")
    if not isinstance(user_id, int) or not isinstance(email, str):
        raise HTTPException(401, "log in first")
    return SessionUser(user_id, email)


CurrentUser = Annotated[SessionUser, Depends(current_user)]


def routes(services: Services) -> APIRouter:
    """The /api account routes on `services`."""
    router = APIRouter(prefix="/api", tags=["accounts"])
    db = services.db

    @router.post("/signup", status_code=201, responses=errors(400, 409))
    async def signup(body: Signup) -> User:
        """Create an account (then log in)."""
        password_hash = await hash_password(body.password)
        row = await db.fetchrow(SIGNUP, body.email, password_hash)
        if row is None:
            raise HTTPException(409, "that email already has an account")
        return User(id=row["id"], email=row["email"])

    @router.post("/login", responses=errors(400, 401))
    async def login(body: Login, request: Request) -> Me:
        """Log in: the response sets the session cookie."""
        # On the primary: a login is rare, and must find an account created a moment ago
        # through any instance, whether or not the client carries the consistency token.
        row = await db.fetchrow(FIND, body.email.lower(), primary=True)
        if not await check_password(body.password, None if row is None else row["password_hash"]):
            raise HTTPException(401, "wrong email or password")
        assert row is not None
        cast(_RungSession, request.session).regenerate()  # a planted id is worth nothing
        request.session["user_id"] = row["id"]
        request.session["email"] = row["email"]
        return Me(email=row["email"])

    @router.post("/logout", status_code=204, response_class=Response)
    async def logout(request: Request) -> Response:
        """Log out: the session is deleted in Redis and its cookie expired."""
        request.session.clear()
        return Response(status_code=204)

    @router.get("/me", responses=errors(401))
    async def me(user: CurrentUser) -> Me:
        """Who is logged in."""
        return Me(email=user.email)

    return router
