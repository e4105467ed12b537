"""
The browser side of a call: ICE-lite (STUN), DTLS-SRTP, SRTP, the one-port demultiplexer,
Opus transcoding, and the SDP translation between WebRTC and plain RTP. Each piece is
sans-IO: bytes and a clock in, bytes and events out.
"""
