"""rung.web: the ASGI glue that makes a Starlette or FastAPI app a stateless instance
behind a load balancer (`pip install 'rung[web]'`).

    import rung.web
    web = rung.web.install(app, db=db, cache=cache, queue=queue, secret=SECRET)
    web.registry      # the prometheus_client registry /metrics serves: add your own metrics

`install` adds the consistency-token middleware (cookie `rung_lsn`, header `Rung-LSN`,
signed: read-your-writes across instances), `/healthz`, `/readyz`, `/metrics`, 503 answers
for the errors rung knows, and a graceful drain on SIGTERM. The token carrier alone:

    app.add_middleware(rung.web.TokenMiddleware, db=db, secret=SECRET)
"""

from rung.web import _tokens
from rung.web._install import Web, install
from rung.web._middleware import COOKIE, HEADER, TokenMiddleware

__all__ = ["COOKIE", "HEADER", "TokenMiddleware", "Web", "install"]

# An internal module under a public name, for its own unit tests (`from rung.web import
# tokens`); a module, so not in __all__ (tests/test_public_api.py pins this list).
tokens = _tokens
