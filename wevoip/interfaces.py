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
