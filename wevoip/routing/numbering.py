"""
Where a number is: the country and area codes a dialplan's `_CC` and `_AC` stand for.

They come from the caller's own E.164 number through Google's libphonenumber metadata (the
`phonenumbers` package), which knows each country's area-code lengths; keeping such a
table ourselves would be wrong within a year.
"""

from __future__ import annotations

import phonenumbers

from wevoip.routing.dialplan import Caller


def caller_of(e164: str | None) -> Caller:
    """The dialplan's view of a caller; empty codes when the number is unknown or invalid."""
    if not e164:
        return Caller()
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return Caller()
    national = phonenumbers.national_significant_number(number)
    area_length = phonenumbers.length_of_geographical_area_code(number)
    return Caller(country_code=str(number.country_code), area_code=national[:area_length])
