"""WeVoIP: a multi-ISP, multi-tenant cloud PBX and softswitch on Twisted."""
