"""rung_links: a link shortener with click analytics, the reference service built only on
rung's public API (see docs/links.md)."""
