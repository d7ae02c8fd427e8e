"""sipguard.engine."""
