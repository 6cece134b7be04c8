"""Summit on the web: the JSON API and its OpenAPI document, the dashboard, live streams."""
