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
