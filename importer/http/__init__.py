"""HTTP: one FastAPI app with /status, /metrics and the read-only façades (feed, look-ups), served by the daemon
or by `serve` alone."""
