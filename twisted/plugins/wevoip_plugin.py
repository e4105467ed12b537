"""Makes `twistd wevoip` available; importing this is cheap, the work is in wevoip.tap."""

from twisted.application.service import ServiceMaker

wevoip = ServiceMaker(
    "WeVoIP", "wevoip.tap", "A multi-tenant cloud PBX and softswitch.", "wevoip")
