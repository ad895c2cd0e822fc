"""ISO 4217 currency codes and their minor units (how many decimal places an amount may have)."""

# Active codes of ISO 4217 list one, 2026 edition, with their minor units. Left out on purpose:
# codes with no minor unit (precious metals XAU, XAG..., XDR, XSU, XUA, testing XTS, none XXX)
# and codes withdrawn by 2026 (HRK and BGN became EUR, ANG became XCG, SLL became SLE, ZWL became ZWG).
_MINOR_UNITS_BY_DIGITS = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    2: "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
       "CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP "
       "GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK "
       "LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO "
       "NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS "
       "SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST "
       "XCD XCG YER ZAR ZMW ZWG",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}

MINOR_UNITS = {code: digits for digits, codes in _MINOR_UNITS_BY_DIGITS.items() for code in codes.split()}


def minor_units(code: str) -> int | None:
    """Decimal places allowed for an upper-case ISO 4217 code, or None when the code is unknown."""
    return MINOR_UNITS.get(code)
