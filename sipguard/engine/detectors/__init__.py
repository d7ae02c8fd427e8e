"""Detectors: small state machines fed what the proxy sees, one message at a time. No I/O, `now` is
the clock, every table is bounded and swept (STYLE C8, C9)."""
