"""sipguard: an inline SIP firewall and intrusion-prevention proxy."""

__version__ = "0.1.0"
