"""GeoIP: overrides and cache (pure), the builtin RIR data, MaxMind DB files."""
