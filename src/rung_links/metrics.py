"""The service's own Prometheus series, beside rung's on `/metrics`.

metrics = Metrics()
metrics.register(web.registry)        # rung.web's registry, which /metrics serves
metrics.click_fallbacks.inc()
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class Metrics:
    """The service's counters, made before the registry they go on exists."""

    def __init__(self) -> None:
        self.click_fallbacks = Counter(
            "rung_links_click_fallbacks",
            "Clicks inserted into the clicks table directly: the queue was full or unreachable.",
            registry=None,
        )
        self.clicks_lost = Counter(
            "rung_links_clicks_lost",
            "Clicks neither the queue nor the database took (both were down).",
            registry=None,
        )
        self.clicks_queued = Counter(
            "rung_links_clicks_queued", "Clicks the queue accepted.", registry=None
        )
        self.click_puts = Counter(
            "rung_links_click_puts",
            "Calls to the queue (each one round trip for a batch of concurrent clicks).",
            registry=None,
        )

    def register(self, registry: CollectorRegistry) -> None:
        for counter in (self.click_fallbacks, self.clicks_lost, self.clicks_queued,
                        self.click_puts):  # fmt: skip
            registry.register(counter)
