"""Money rules: rating, packages, ledgers and timers. Decimal only; no SIP, no web."""
