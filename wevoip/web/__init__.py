"""The HTTP side: consoles, the REST API and the health endpoint, as Klein apps."""
