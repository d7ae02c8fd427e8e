"""sipguard.core."""
