"""Report CSV: the API's and the console's downloads, safe to open in a spreadsheet."""

from decimal import Decimal

from wevoip.web.csvrows import rows_csv


def test_rows_become_csv_with_formulas_quoted_and_numbers_kept():
    body = rows_csv([{"customer_name": "=HYPERLINK(\"http://evil\")", "amount": Decimal("-1.500000"), "note": None},
                     {"customer_name": "Acme, Inc.", "amount": Decimal("2"), "note": "+1 555"}])
    assert body.decode().split("\r\n") == [
        "customer_name,amount,note", "\"'=HYPERLINK(\"\"http://evil\"\")\",-1.500000,", "\"Acme, Inc.\",2,'+1 555", ""]
    assert rows_csv([]) == b""
