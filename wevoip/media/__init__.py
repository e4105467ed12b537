"""
Media: SDP, the RTP/RTCP relay and its port pool, the endpoint that plays and records, and
the browser side (webrtc/: ICE-lite, DTLS-SRTP, SRTP, Opus, SDP translation).
"""
