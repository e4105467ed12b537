from wevoip.sip import tags


def test_random_hex_has_the_size_asked_and_does_not_repeat():
    seen = {tags.random_hex(5) for _ in range(5000)}
    assert len(seen) == 5000
    assert all(len(tag) == 10 and int(tag, 16) >= 0 for tag in seen)


def test_random_hex_refills_across_the_block_edge():
    pieces = [tags.random_hex(7) for _ in range(2 * tags._BLOCK // 7 + 3)]
    assert all(len(piece) == 14 for piece in pieces)
    assert len(set(pieces)) == len(pieces)
