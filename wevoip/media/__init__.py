"""Media: SDP, the RTP/RTCP relay and its port pool, and the endpoint that plays and records."""
