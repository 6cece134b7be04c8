"""The journal: every event on the bus, recorded for inspection and replay."""
