"""sipguard.services."""
