"""Forge webhooks: pure delivery parsing and verification (:mod:`.verify`) apart from the
HTTP handler (:mod:`.http`)."""
