"""Real SIP peers for the tests: SIPp and Kamailio, started by the tests on loopback.

``require`` finds binaries (skip, or fail under SIPGUARD_REQUIRE_PEERS=1), ``ports`` picks free
loopback ports and probes readiness, ``sipp`` runs SIPp scenarios (``scenarios/*.xml``), and
``kamailio`` runs a small registrar/PBX with digest authentication.
"""
