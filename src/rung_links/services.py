"""What the routes share: the settings, rung's clients and the service's own parts.

services = app.state.services     # what create_app built; the lifespan opens its clients
"""

from __future__ import annotations

from dataclasses import dataclass

import rung
from rung_links.clicks import ClickRecorder
from rung_links.metrics import Metrics
from rung_links.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: rung.Database
    cache: rung.Cache
    queue: rung.Queue
    clicks: ClickRecorder
    metrics: Metrics
