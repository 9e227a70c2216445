"""The lab: climb the ladder on rung_links and measure what each rung buys (`rung lab`)."""
