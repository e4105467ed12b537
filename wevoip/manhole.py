"""
The admin SSH manhole: a Python shell inside the running reactor.

It can do anything the node can, so it takes public keys only (no passwords to guess),
listens on loopback unless told otherwise, and is off when its authorized_keys file is
missing. The file is read at every login so that removing a key takes effect at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch import manhole, manhole_ssh
from twisted.conch.checkers import IAuthorizedKeysDB, SSHPublicKeyChecker, readAuthorizedKeyFile
from twisted.conch.insults import insults
from twisted.conch.ssh import keys
from twisted.cred import portal
from zope.interface import implementer


def manhole_enabled(authorized_keys_path: str) -> bool:
    return Path(authorized_keys_path).is_file()


def load_or_create_host_key(path: str) -> keys.Key:
    """The same host key on every start, so admins' known_hosts stay valid."""
    key_path = Path(path)
    if key_path.exists():
        return keys.Key.fromFile(str(key_path))
    key = keys.Key(ed25519.Ed25519PrivateKey.generate())
    key_path.parent.mkdir(parents=True, exist_ok=True)
    partial = key_path.with_name(key_path.name + ".new")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key.toString("openssh"))
    os.replace(partial, key_path)
    return key


@implementer(IAuthorizedKeysDB)
class AuthorizedKeysFile:
    """Any login name is accepted: the key is the credential."""

    def __init__(self, path: str):
        self.path = Path(path)

    def getAuthorizedKeys(self, username):  # noqa: N802 (Twisted's name)
        try:
            with self.path.open("rb") as lines:
                return list(readAuthorizedKeyFile(lines))
        except OSError:
            return []


def manhole_factory(namespace: dict, authorized_keys_path: str, host_key: keys.Key) -> manhole_ssh.ConchFactory:
    """`namespace` is shared live: what the node adds later is visible in new sessions."""
    realm = manhole_ssh.TerminalRealm()
    realm.chainedProtocolFactory = lambda: insults.ServerProtocol(manhole.ColoredManhole, namespace)
    checker = SSHPublicKeyChecker(AuthorizedKeysFile(authorized_keys_path))
    factory = manhole_ssh.ConchFactory(portal.Portal(realm, [checker]))
    key_type = host_key.sshType()
    factory.publicKeys = {key_type: host_key.public()}
    factory.privateKeys = {key_type: host_key}
    return factory
