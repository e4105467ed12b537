"""Media: RTP relay, endpoints that play and record, and the WebRTC side. No pages, no money."""
