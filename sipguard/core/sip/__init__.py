"""sipguard.core.sip: the pure SIP core (parser, accessors, framer, editor, replies).

No I/O, no clock, standard library only. See docs/core-sip-api.md for the contract.
"""

from .auth import DigestCredentials
from .edit import (
    MessageEditor,
    add_header,
    decrement_max_forwards,
    insert_via,
    remove_headers,
    remove_top_via,
    set_request_uri,
)
from .errors import SipParseError
from .framer import StreamFramer
from .limits import (
    MAX_HEADER_LINE,
    MAX_HEADER_SECTION,
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    MAX_STREAM_BUFFER,
    MAX_URI_LENGTH,
    MAX_VIA_VALUES,
)
from .message import (
    HEADER_IDS,
    HEADER_NAMES,
    Hdr,
    HeaderField,
    HeaderValue,
    Method,
    SipMessage,
    SipRequest,
    SipResponse,
)
from .parser import is_keepalive, parse_message
from .replies import REASONS, STATUS_LINES, build_response, build_response_raw, reason_phrase
from .uri import (
    NameAddr,
    OtherUri,
    SipUri,
    TelUri,
    Via,
    format_host,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_host_port,
)

__all__ = [
    "HEADER_IDS",
    "HEADER_NAMES",
    "MAX_HEADERS",
    "MAX_HEADER_LINE",
    "MAX_HEADER_SECTION",
    "MAX_MESSAGE_SIZE",
    "MAX_STREAM_BUFFER",
    "MAX_URI_LENGTH",
    "MAX_VIA_VALUES",
    "REASONS",
    "STATUS_LINES",
    "DigestCredentials",
    "Hdr",
    "HeaderField",
    "HeaderValue",
    "MessageEditor",
    "Method",
    "NameAddr",
    "OtherUri",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "StreamFramer",
    "TelUri",
    "Via",
    "add_header",
    "build_response",
    "build_response_raw",
    "decrement_max_forwards",
    "format_host",
    "insert_via",
    "is_keepalive",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "reason_phrase",
    "remove_headers",
    "remove_top_via",
    "set_request_uri",
    "split_host_port",
]
