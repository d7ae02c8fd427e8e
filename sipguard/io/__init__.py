"""sipguard.io."""
