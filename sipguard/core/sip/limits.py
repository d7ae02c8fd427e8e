"""Named limits of the SIP core, each with where its number comes from.

Every limit is a defence against a peer that sends more than any real SIP element does. They are
module constants so tests, the framer and the proxy share one value (h11's
DEFAULT_MAX_INCOMPLETE_EVENT_SIZE is the model).
"""

from __future__ import annotations

__all__ = [
    "MAX_CSEQ",
    "MAX_HEADERS",
    "MAX_HEADER_COUNT",
    "MAX_HEADER_LINE",
    "MAX_HEADER_SECTION",
    "MAX_MAX_FORWARDS",
    "MAX_MESSAGE_SIZE",
    "MAX_STREAM_BUFFER",
    "MAX_URI_LENGTH",
    "MAX_VIA_VALUES",
]

# Whole message. A UDP datagram cannot carry more than 65,535 - 8 (UDP) - 20 (IPv4) octets, and
# Kamailio's BUF_SIZE (its receive buffer and maximum message) is 65535; RFC 3261 18.1.1 already
# sends anything within 200 octets of the path MTU over TCP, so real messages are a few KiB at
# most. Exceeding it -> 513 Message Too Large (RFC 3261 21.5.9).
MAX_MESSAGE_SIZE = 65535

# Start line plus header fields (everything before the blank line). h11 allows 16 KiB for an
# HTTP head, Apache 8 KiB per field x 100 fields; the longest RFC 4475 message (longreq, built to
# test long values) has a 3.4 KiB head, so 16 KiB is generous for SIP.
MAX_HEADER_SECTION = 16384

# Header field lines (a folded field counts once). Apache's LimitRequestFields default is 100;
# the RFC 4475 longreq torture message, which has 34 Via lines, has 44.
MAX_HEADERS = 100
MAX_HEADER_COUNT = MAX_HEADERS  # alias (salvage.py uses this name)

# One header field including its folded continuation lines. Apache's LimitRequestFieldSize is
# 8190 and nginx's large_client_header_buffers 8k; longreq's longest line is 593 octets.
MAX_HEADER_LINE = 8192

# Via values in one message. Max-Forwards starts at 70 (RFC 3261 8.1.1.6) and every proxy adds one
# Via, so a request with more than 70 Via values did not come through well-behaved hops.
MAX_VIA_VALUES = 70

# Request-URI length; longer -> 414 Request-URI Too Long (RFC 3261 21.4.12). RFC 9112 3 asks HTTP
# to support request lines of at least 8000 octets; real SIP R-URIs (GRUUs, user=phone, params)
# stay below a few hundred octets, so 4 KiB is generous.
MAX_URI_LENGTH = 4096

# Buffered, not yet framed octets of one TCP/TLS connection: one maximal message plus the start
# of the next (h11 bounds its receive buffer the same way, relative to its largest event).
MAX_STREAM_BUFFER = 2 * MAX_MESSAGE_SIZE

# CSeq sequence number: "MUST be expressible as a 32-bit unsigned integer" and, for a new
# request, "MUST be less than 2**31" (RFC 3261 8.1.1.5); RFC 4475 scalar02/scalarlg overflow it.
MAX_CSEQ = 2**31 - 1

# Max-Forwards is 0..255 (RFC 3261 20.22: "an integer in the range 0-255").
MAX_MAX_FORWARDS = 255
