"""sipguard.store."""
