"""
Finding feature plugins: twisted.plugin over the built-in plugins/ folder and the folders
the operator names in the configuration.

The folders are gathered into one synthetic package, `wevoip_plugins`, so an operator adds
a feature by dropping a module into a configured folder. Every object found is checked
with verifyObject; a broken plugin stops start-up with its name rather than failing the
first call that needs it.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Iterable

from twisted.plugin import getPlugins
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

PACKAGE = "wevoip_plugins"
SOURCE_TREE = Path(__file__).resolve().parent.parent / "plugins"


class PluginError(Exception):
    """A plugin is missing, broken, or two share a name."""


def _built_in() -> types.ModuleType:
    """Installed, plugins/ is the package wevoip_plugins; in a checkout it is made from the folder."""
    try:
        return importlib.import_module(PACKAGE)
    except ImportError:
        package = types.ModuleType(PACKAGE, "WeVoIP feature plugins, from several folders.")
        package.__path__ = [str(SOURCE_TREE)]
        package.__file__ = str(SOURCE_TREE / "__init__.py")
        sys.modules[PACKAGE] = package
        return package


def _search(interface, directories: Iterable[Path]) -> list[object]:
    """The plugins in the built-in folder and `directories`; the folders are added to the
    package's path only for this search, so one discovery's folders never leak into the
    next (a node's, or another test's in the same process)."""
    package = _built_in()
    built_in = list(package.__path__)
    extra = [str(directory) for directory in directories if directory.is_dir() and str(directory) not in built_in]
    package.__path__[:] = built_in + extra
    try:
        return list(getPlugins(interface, package))
    finally:
        package.__path__[:] = built_in


def discover(interface, directories: Iterable[Path] = ()) -> dict[str, object]:
    found: dict[str, object] = {}
    for plugin in _search(interface, directories):
        name = getattr(plugin, "name", None)
        try:
            verifyObject(interface, plugin)
        except Invalid as error:
            raise PluginError(f"plugin {name or plugin!r} does not provide {interface.__name__}: {error}") from None
        if name in found:
            raise PluginError(f"two plugins are named {name!r}")
        found[name] = plugin
    return found


def require(found: dict[str, object], enabled: Iterable[str], kind: str) -> list[object]:
    """The enabled plugins in order; one that discovery did not find is named in the error."""
    missing = [name for name in enabled if name not in found]
    if missing:
        raise PluginError(f"{kind} plugin {missing[0]!r} is enabled but was not found "
                          f"(found: {', '.join(sorted(found)) or 'none'})")
    return [found[name] for name in enabled]
