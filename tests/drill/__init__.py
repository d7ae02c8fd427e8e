"""Tests of `sipguard drill` (sipguard/drill/)."""
