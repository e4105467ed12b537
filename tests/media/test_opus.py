"""
Opus <-> G.711 with FFmpeg's codecs: a tone goes in, the same tone comes out.

The tones are made and measured by sox (its `stat` effect's rough frequency), so neither
end of the check is our code.
"""

import re
import subprocess
from fractions import Fraction

import av
import pytest

from wevoip.media.webrtc.opus import G711ToOpus, OpusToG711, TranscodeError


def sox(*arguments, data=b""):
    return subprocess.run(["sox", *arguments], input=data, capture_output=True, check=True)


def tone(frequency, rate, encoding, bits, seconds=1.0):
    return sox("-n", "-r", str(rate), "-c", "1", "-e", encoding, "-b", str(bits), "-t", "raw", "-",
               "synth", str(seconds), "sine", str(frequency), "vol", "0.5").stdout


def frequency_of(raw, rate, encoding, bits):
    report = sox("-t", "raw", "-r", str(rate), "-c", "1", "-e", encoding, "-b", str(bits), "-",
                 "-n", "stat", data=raw).stderr.decode()
    amplitude = float(re.search(r"RMS\s+amplitude:\s+([\d.]+)", report).group(1))
    return int(re.search(r"Rough\s+frequency:\s+(\d+)", report).group(1)), amplitude


def chunks(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_g711_tone_comes_out_of_opus_at_the_same_frequency():
    mulaw = tone(440, 8000, "u-law", 8)
    transcoder = G711ToOpus("PCMU")
    opus_packets = [packet for payload in chunks(mulaw, 160) for packet in transcoder.transcode(payload)]
    assert len(opus_packets) >= 45    # one second is 50 frames, less the resampler's delay
    decoder = av.CodecContext.create("opus", "r")
    decoder.sample_rate, decoder.layout = 48000, "mono"
    to_s16 = av.AudioResampler(format="s16", layout="mono", rate=48000)
    pcm = b"".join(bytes(out.planes[0])[:out.samples * 2]
                   for packet in opus_packets for frame in decoder.decode(av.Packet(packet))
                   for out in to_s16.resample(frame))
    frequency, amplitude = frequency_of(pcm[9600:], 48000, "signed", 16)
    expected, _ = frequency_of(tone(440, 48000, "signed", 16), 48000, "signed", 16)
    assert abs(frequency - expected) <= 5 and amplitude > 0.2


def test_opus_tone_comes_out_of_g711_at_the_same_frequency():
    pcm = tone(1000, 48000, "signed", 16)
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    encoder.time_base = Fraction(1, 48000)
    opus_packets = []
    for index, samples in enumerate(chunks(pcm, 960 * 2)):
        if len(samples) < 960 * 2:
            break
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.sample_rate, frame.pts = 48000, index * 960
        frame.planes[0].update(samples)
        opus_packets.extend(bytes(packet) for packet in encoder.encode(frame))
    transcoder = OpusToG711("PCMA")
    payloads = [payload for packet in opus_packets for payload in transcoder.transcode(packet)]
    assert {len(payload) for payload in payloads} == {160}
    assert len(payloads) >= 45
    frequency, amplitude = frequency_of(b"".join(payloads[5:]), 8000, "a-law", 8)
    # sox's rough frequency is a zero-crossing count with a bias of its own: compare with
    # what it says of the same tone made directly in A-law.
    expected, _ = frequency_of(tone(1000, 8000, "a-law", 8), 8000, "a-law", 8)
    assert abs(frequency - expected) <= 5 and amplitude > 0.2


def test_junk_opus_is_refused_as_a_transcode_error():
    transcoder = OpusToG711("PCMU")
    with pytest.raises(TranscodeError):
        for junk in (b"\xff" * 3, b"\x00", b"\xfc\xff\xff\xff\xff"):
            transcoder.transcode(junk)


def test_an_unknown_law_is_refused_by_name():
    with pytest.raises(ValueError, match="'G729' is not PCMU or PCMA"):
        G711ToOpus("G729")
