"""`GET /`: the HTML page, with a CSP that admits only its own script and style."""

from __future__ import annotations

import re

from rung_links import page
from tests.links.support import Service


async def test_the_page_has_the_forms_and_a_strict_csp(service: Service) -> None:
    answer = await service.client.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    for form in ('id="signup"', 'id="login"', 'id="create"', 'id="links"'):
        assert form in answer.text
    csp = answer.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert page._sha256(page.SCRIPT) in csp


def test_the_instance_name_is_escaped() -> None:
    html = page.render('<script>alert("x")</script>')
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_the_script_never_writes_html() -> None:
    """What users typed reaches the page through textContent only."""
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", page.SCRIPT)
