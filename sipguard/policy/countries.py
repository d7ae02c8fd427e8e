"""ISO 3166-1 alpha-2 country codes, the spelling of every country in a policy.

`ISO_3166_1` is the 249 officially assigned codes, generated from Debian's iso-codes 4.15.0
(`/usr/share/iso-codes/json/iso_3166-1.json`) and identical to tzdata's `iso3166.tab`; a test
cross-checks both (and phonenumbers' regions) where they are installed. The policy layer stays
stdlib-only, so the list is written out here: regenerate it when ISO assigns a code (rare: the last
was SS in 2011).

`COUNTRY_CODES` adds the codes that real GeoIP and numbering data use without ISO assigning them:
  XK  Kosovo (user-assigned; used by the EU, the RIRs, MaxMind and libphonenumber)
  EU  networks a RIR allocated to Europe as a whole (RIR delegation files, GeoIP data)
  AP  the same for the Asia/Pacific region
  AC  Ascension Island, TA  Tristan da Cunha (exceptionally reserved; libphonenumber regions)
Codes ISO only reserves, such as UK, are refused: no database reports them (UK is GB).
"""

from __future__ import annotations

__all__ = ["COUNTRY_CODES", "EXTRA_CODES", "ISO_3166_1", "country_hint", "is_country_code"]

ISO_3166_1: frozenset[str] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
    GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
    KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
    MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
    TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
    ZW
    """.split()  # noqa: SIM905 - 249 quoted strings would be five times as long
)

EXTRA_CODES: frozenset[str] = frozenset({"XK", "EU", "AP", "AC", "TA"})

COUNTRY_CODES: frozenset[str] = ISO_3166_1 | EXTRA_CODES

#: Common mistakes and what was meant.
_HINTS = {"UK": "GB", "EL": "GR"}


def is_country_code(text: str) -> bool:
    """True for an upper-case code in `COUNTRY_CODES`: `NO` is Norway, `no` is not a code."""
    return text in COUNTRY_CODES


def country_hint(text: str) -> str | None:
    """The code probably meant by a wrong one (`nl` -> `NL`, `UK` -> `GB`), or None."""
    upper = text.upper()
    if upper in _HINTS:
        return _HINTS[upper]
    if upper in COUNTRY_CODES:
        return upper
    return None
