"""
Memory of the registrar's in-memory index, alone: 10,000 bindings (one per subscriber,
as phones usually are) made through `Registrar.register`, measured with tracemalloc,
the strings a parsed REGISTER would carry included.

    .venv/bin/python bench/registrar_memory.py [count]

The whole node's figure (RSS before and after registering over SIP) is bench/sip_memory.py;
this one shows how much of it the index itself is.
"""

from __future__ import annotations

import sys
import tracemalloc

from twisted.internet.task import Clock

from wevoip.sip.registrar import ContactRequest, RegisterRequest, Registrar, RegistrarPolicy


def main(count: int) -> None:
    clock = Clock()
    clock.advance(1_800_000_000)
    registrar = Registrar(clock, RegistrarPolicy(), node="bench-node")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(count):
        request = RegisterRequest(
            isp_id=1, tenant_id=1 + i // 100, subscriber_id=1000 + i,
            call_id=f"{i:08x}-5f1e-4a2b-9c3d-bench@192.168.{i >> 8 & 255}.{i & 255}", cseq=1, expires=3600,
            contacts=(ContactRequest(f"sip:u{i}@192.168.{i >> 8 & 255}.{i & 255}:5060;transport=udp"),),
            source=f"198.51.{i >> 8 & 255}.{i & 255}:{5060 + i % 1000}", transport="udp",
            local="203.0.113.1:5060")
        assert registrar.register(request).status == 200
    del request
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"{count} bindings: {(after - before) / 1024:.0f} KiB, "
          f"{(after - before) / count:.0f} bytes per binding (index and expiry heap)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
