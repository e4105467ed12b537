"""Calls: the B2BUA that anchors every call as an A leg and the B legs it rings."""
