"""The JSON the API takes and gives, and the rules every input must pass (pydantic 2).

    LinkIn.model_validate({"target_url": "https://example.com", "slug": "docs"})

Every rule fails as a 422 whose message says what is wrong, never as a 500 further in: a
string PostgreSQL or a header could not carry (a NUL, a lone surrogate, a non-ASCII URL)
is refused here.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator

SLUG = re.compile(r"[A-Za-z0-9_-]{3,64}")
MAX_URL = 2048
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")
_URL_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: a Location header's


def _storable(value: str) -> str:
    """PostgreSQL text takes neither NUL nor lone surrogates (which UTF-8 cannot encode)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _email(value: str) -> str:
    _storable(value)
    if not _EMAIL.fullmatch(value):
        raise ValueError("must be an email address such as ann@example.com")
    return value.lower()


def _target_url(value: str) -> str:
    if not _URL_CHARS.fullmatch(value):
        raise ValueError(
            "must be printable ASCII without spaces (percent-encode anything else, "
            "and write an international domain name in its xn-- form)"
        )
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        raise ValueError("must be a well-formed URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host (https://example.com/...)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password")
    return value


def _future(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # a time without a zone is taken as UTC
    try:
        value = value.astimezone(UTC)  # as PostgreSQL will store it
    except OverflowError:  # 9999-12-31T23:00-14:00 is past the last UTC date
        raise ValueError("must be a date PostgreSQL can store (before year 9999)") from None
    if value <= datetime.now(UTC):
        raise ValueError("must be in the future")
    return value


Slug = Annotated[
    str, Field(strict=True, pattern=f"^{SLUG.pattern}$", description="3-64 of [A-Za-z0-9_-]")
]
# The schema shows the shape (`pattern`, `format`) to clients and fuzzers; the validators
# check it, with messages that say what is wrong rather than "should match pattern".
TargetUrl = Annotated[
    str,
    Field(strict=True, min_length=1, max_length=MAX_URL, description="an http(s) URL",
          json_schema_extra={"format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[!-~]+$"}),
    AfterValidator(_target_url),
]  # fmt: skip
Email = Annotated[
    str,
    Field(strict=True, min_length=3, max_length=254, json_schema_extra={"format": "email"}),
    AfterValidator(_email),
]
Password = Annotated[
    str, Field(strict=True, min_length=8, max_length=256), AfterValidator(_storable)
]
Expiry = Annotated[datetime, AfterValidator(_future)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Signup(_Input):
    email: Email
    password: Password = Field(description="8 to 256 characters")


class Login(_Input):
    # Any string is worth a try; only its length is bounded (so is the hashing work), and
    # it must be one PostgreSQL and scrypt can take.
    email: Annotated[
        str, Field(strict=True, min_length=1, max_length=254), AfterValidator(_storable)
    ]
    password: Annotated[
        str, Field(strict=True, min_length=1, max_length=256), AfterValidator(_storable)
    ]


class LinkIn(_Input):
    target_url: TargetUrl
    slug: Slug | None = Field(default=None, description="chosen for you when left out")
    expires_at: Expiry | None = None


class LinkPatch(_Input):
    target_url: TargetUrl | None = None
    disabled: StrictBool | None = None

    @model_validator(mode="before")
    @classmethod
    def _something(cls, data: Any) -> Any:
        if isinstance(data, dict) and all(data.get(k) is None for k in ("target_url", "disabled")):
            raise ValueError("give target_url, disabled or both")
        return data


class User(BaseModel):
    id: int
    email: str


class Me(BaseModel):
    email: str


class Link(BaseModel):
    slug: str
    target_url: str
    disabled: bool
    created_at: datetime
    expires_at: datetime | None


class LinkList(BaseModel):
    links: list[Link]


class Day(BaseModel):
    day: date
    clicks: int


class Stats(BaseModel):
    slug: str
    clicks: int
    daily: list[Day]


class Error(BaseModel):
    detail: str


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for error statuses that answer `{"detail": "..."}` (400: a body
    that is not even text, which FastAPI refuses before validation)."""
    return {status: {"model": Error} for status in statuses}
