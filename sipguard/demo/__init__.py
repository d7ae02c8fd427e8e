"""sipguard.demo: `sipguard demo`, everything on one machine without a PBX (demo only).

`pbx` is a toy registrar and UAS with digest auth (demo only, not a PBX), `phones` the legitimate
users, `policy.yaml` the demo policy (package data), `live` the running summary, and `run` the
orchestrator that starts them, sipguard in front of the toy PBX and the drill's attackers.
"""
