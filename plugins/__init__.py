"""
WeVoIP's built-in feature plugins, imported as the package `wevoip_plugins`.

Operators add their own by dropping modules into a folder named in the configuration
(`plugins.directories`); those folders join this package's path. See wevoip/plugins.py.
"""
