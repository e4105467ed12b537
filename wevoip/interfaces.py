"""
The seams where WeVoIP takes more than one implementation, as zope.interface interfaces.

Feature plugins provide objects that implement these (and twisted.plugin's IPlugin); they
are found by `wevoip.plugins.discover` and checked with verifyObject before use.
"""

from zope.interface import Attribute, Interface


class IDialplanPreset(Interface):
    """A country's way of dialling, as dialplan rules an ISP can load in one step."""

    name = Attribute("Short unique name, such as 'us' or 'br', used in the API and consoles.")
    country = Attribute("ISO 3166 alpha-2 code of the country.")
    description = Attribute("One line for the console's list of presets.")

    def rules():
        """The ordered `wevoip.routing.dialplan.Rule`s, each of which passes `Rule.check()`."""


class ISipGate(Interface):
    """The SIP core's door keeper, asked about every message before anything else sees it:
    bans, rate limits and scanner filters live behind it (the default admits everything)."""

    def admit(message, flow):
        """True to let `message` in; False drops it silently (and it is counted).

        `message` is a parsed `wevoip.sip.message.Request` or `Response`, or the
        `wevoip.sip.errors.ParseError` of one that did not parse (False then also spares
        the sender its 400); `flow` is the `wevoip.sip.flow.Flow` it came in on, whose
        `remote` is the source (host, port)."""


class MediaUnavailable(Exception):
    """The relay cannot take this call (no free ports, relay down); the B2BUA answers 503."""


class IMediaRelay(Interface):
    """Anchors a call's media so both phones send to us: the in-process relay or rtpengine."""

    def allocate(call_id, on_lost):
        """
        Open a relay session for a call of two legs, 'a' (the side that called) and 'b'.

        Returns a Deferred firing with an `IMediaSession`, or failing with
        `MediaUnavailable`. `on_lost(reason)` is called at most once, if no media flows for
        the configured time or the relay loses the session, so the call layer can end both
        legs; it is not called after `release`. `on_lost(reason, failed_setup=True)` says
        the media path never came up (a browser leg's ICE or DTLS failed or timed out), so
        the call carried nothing and is not billed as talk.
        """


class IMediaSession(Interface):
    """One call's relay session; every port it holds goes back when it is released."""

    call_id = Attribute("The Call-ID (or any key) the session was allocated for.")

    def offer(leg, sdp):
        """
        An offer (bytes) arriving from `leg` ('a' or 'b'); returns a Deferred firing with the
        description to send to the other leg, pointing at the relay. Fails with
        `wevoip.media.sdp.SdpError` (answer 488) or `MediaUnavailable` (503).
        """

    def answer(leg, sdp):
        """The answer to the last offer, arriving from `leg`; rewritten like `offer`."""

    def release():
        """End the session; the Deferred fires once every port is free again. Idempotent."""

    def flow():
        """
        Once `release` has fired: a `wevoip.media.relay.Flow`, the RTP packets that reached
        the other side each way over the call, which is how a call whose media went only
        one way is flagged in its record; None when the relay could not count.
        """


class ICallApplication(Interface):
    """A feature a call can be handed to (the echo test, an announcement, later IVR and
    voicemail): the server answers the call itself and the application drives its media
    through an `ICallHandle`. It never sees the store, the SIP core or the node."""

    name = Attribute("Short unique name, as a DID's feature names it ('echo'; 'voicemail' for 'voicemail:100').")
    description = Attribute("One line for the consoles' list of features.")

    def answer(call):
        """Serve an answered call (an `ICallHandle`); may return a Deferred. The call goes on
        until the caller or `call.hang_up()` ends it; a failure here hangs up."""


class ICallHandle(Interface):
    """The narrow handle an `ICallApplication` gets for one call: its media and its end."""

    argument = Attribute("What follows ':' in the DID's feature ('100' for 'voicemail:100'), or ''.")
    caller = Attribute("The caller's SIP URI, as a string.")
    called = Attribute("The number called (E.164), or the feature code dialled.")
    clock = Attribute("The reactor's clock (IReactorTime), for the application's own timers.")
    ended = Attribute("A Deferred firing with who hung up ('caller', 'callee' or 'system') when the call ends.")

    def play(path):
        """Play an 8 kHz mono 16-bit WAV file; the Deferred fires when it has all been sent."""

    def record(path, max_ms=None):
        """Record what the caller sends into a WAV; fires with the milliseconds once stopped."""

    def stop_recording():
        """Stop a recording started with `record` and write it."""

    def collect_digits(count=None, terminator="#", timeout_ms=5000):
        """DTMF (RFC 4733 or SIP INFO) typed so far and from now on; fires with the digits."""

    def echo(on=True):
        """Send back what the caller sends (the echo test)."""

    def hang_up():
        """End the call: BYE to the caller. Idempotent; nothing else works afterwards."""
