"""Every bad input is a 4xx with a message that says what is wrong; none is a 5xx."""

from __future__ import annotations

from typing import Any

import pytest

from tests.links.support import PASSWORD, Service

LONG_URL = "https://example.com/" + "a" * 2048


def _messages(answer: Any) -> str:
    detail = answer.json()["detail"]
    if isinstance(detail, str):
        return detail
    return " | ".join(".".join(map(str, e["loc"])) + ": " + e["msg"] for e in detail)


CREATE_CASES = [
    (
        {"target_url": "ftp://example.com/x"},
        "body.target_url: Value error, must be an http:// or https:// URL",
    ),
    ({"target_url": "https:///path"}, "must name a host"),
    ({"target_url": "example.com"}, "must be an http:// or https:// URL"),
    ({"target_url": "https://exa mple.com"}, "printable ASCII without spaces"),
    ({"target_url": "https://bücher.example"}, "printable ASCII without spaces"),
    ({"target_url": "https://user:pw@example.com"}, "must not carry a user name or password"),
    ({"target_url": "http://example.com:99999"}, "must be a well-formed URL"),
    ({"target_url": "http://[::1"}, "must be a well-formed URL"),
    ({"target_url": LONG_URL}, "at most 2048 characters"),
    ({"target_url": ""}, "at least 1 character"),
    ({"target_url": 42}, "Input should be a valid string"),
    ({"target_url": None}, "Input should be a valid string"),
    ({}, "body.target_url: Field required"),
    ({"target_url": "https://example.com", "slug": "ab"}, "body.slug: String should match pattern"),
    ({"target_url": "https://example.com", "slug": "a" * 65}, "String should match pattern"),
    ({"target_url": "https://example.com", "slug": "no/slash"}, "String should match pattern"),
    ({"target_url": "https://example.com", "slug": "ünï"}, "String should match pattern"),
    ({"target_url": "https://example.com", "slug": 123}, "Input should be a valid string"),
    (
        {"target_url": "https://example.com", "expires_at": "2001-01-01T00:00:00Z"},
        "must be in the future",
    ),
    ({"target_url": "https://example.com", "expires_at": "tomorrow"}, "valid datetime"),
    (
        {"target_url": "https://example.com", "expires_at": "9999-12-31T23:00:00-14:00"},
        "a date PostgreSQL can store",
    ),
    (
        {"target_url": "https://example.com", "colour": "red"},
        "body.colour: Extra inputs are not permitted",
    ),
]


@pytest.mark.parametrize(("body", "message"), CREATE_CASES)
async def test_a_bad_link_is_422_with_a_message(service: Service, body: Any, message: str) -> None:
    await service.signup_and_login()
    answer = await service.client.post("/api/links", json=body)
    assert answer.status_code == 422
    assert message in _messages(answer)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "give target_url, disabled or both"),
        ({"disabled": None}, "give target_url, disabled or both"),
        ({"disabled": "yes"}, "body.disabled: Input should be a valid boolean"),
        ({"disabled": 1}, "Input should be a valid boolean"),
        ({"target_url": "javascript:alert(1)"}, "must be an http:// or https:// URL"),
    ],
)
async def test_a_bad_change_is_422_with_a_message(
    service: Service, body: Any, message: str
) -> None:
    await service.signup_and_login()
    await service.create(slug="docs")
    answer = await service.client.patch("/api/links/docs", json=body)
    assert answer.status_code == 422
    assert message in _messages(answer)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "must be an email address"),
        ({"email": "ann@example.com", "password": "short"}, "at least 8 characters"),
        ({"email": "ann@example.com", "password": "x" * 257}, "at most 256 characters"),
        ({"email": "ann@example.com\x00", "password": PASSWORD}, "must not contain NUL"),
        ({"email": "ann@example.com"}, "body.password: Field required"),
        ({"email": ["ann@example.com"], "password": PASSWORD}, "valid string"),
    ],
)
async def test_a_bad_signup_is_422_with_a_message(
    service: Service, body: Any, message: str
) -> None:
    answer = await service.client.post("/api/signup", json=body)
    assert answer.status_code == 422
    assert message in _messages(answer)


async def test_bodies_that_are_not_json_objects_are_422(service: Service) -> None:
    await service.signup_and_login()
    bodies = [(b"{", "application/json"), (b"[1, 2]", "application/json"),
              (b"\xff\xfe", "application/json"), (b"target_url=x", "text/plain")]  # fmt: skip
    for content, kind in bodies:
        answer = await service.client.post(
            "/api/links", content=content, headers={"content-type": kind}
        )
        assert answer.status_code == 422, (content, answer.text)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"email": "a@b.co", "password": "\\ud800\\ud800\\ud800\\ud800"}',
        b'{"email": "a@b.co", "password": "long enough", "\\udfff": 1}',
        b'{"email": "\\udfff@b.co", "password": "long enough"}',
    ],
)
@pytest.mark.parametrize("path", ["/api/signup", "/api/login"])
async def test_a_lone_surrogate_anywhere_is_a_422_not_a_500(
    service: Service, raw: bytes, path: str
) -> None:
    """JSON can carry a lone surrogate, UTF-8 cannot: the 422 leaves the input out (echoing
    it would fail to encode) and the value never reaches scrypt or PostgreSQL."""
    answer = await service.client.post(
        path, content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422
    assert '"input"' not in answer.text


@pytest.mark.parametrize(
    "body",
    [
        {"email": "ann@example.com\x00", "password": PASSWORD},
        {"email": "ann@example.com", "password": "pass\x00word"},
        {"email": "", "password": PASSWORD},
        {"email": "ann@example.com", "password": "x" * 257},
    ],
)
async def test_a_login_postgresql_or_scrypt_could_not_take_is_422(
    service: Service, body: dict[str, str]
) -> None:
    assert (await service.client.post("/api/login", json=body)).status_code == 422


@pytest.mark.parametrize("limit", ["0", "1001", "ten", "-1"])
async def test_a_bad_list_limit_is_422(service: Service, limit: str) -> None:
    await service.signup_and_login()
    assert (await service.client.get("/api/links", params={"limit": limit})).status_code == 422
