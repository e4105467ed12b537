import pytest

from wevoip.routing.dialplan import Caller
from wevoip.routing.numbering import caller_of


@pytest.mark.parametrize("e164, caller", [
    ("+14155550100", Caller("1", "415")),
    ("+551133334444", Caller("55", "11")),
    ("+442079460000", Caller("44", "20")),
    ("+493012345678", Caller("49", "30")),
    (None, Caller()),
    ("+999", Caller()),
])
def test_country_and_area_come_from_the_callers_number(e164, caller):
    assert caller_of(e164) == caller
