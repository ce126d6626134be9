"""Store keys: a random 256-bit raw SQLCipher key, kept in a secure OS keyring or wrapped by a passphrase.

Only native, encrypted keyring backends are accepted (Secret Service, macOS Keychain, Windows Credential Locker,
KWallet). Where none is available the key is wrapped with AES-256-GCM under a key derived from a passphrase with
scrypt (N=2**17, r=8, p=1: 128 MiB of memory per guess). A plaintext keyring is never used.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from core.errors import KeyMissingError, KeyringUnavailableError, WrongKeyError

__all__ = [
    "KEY_BYTES",
    "SECURE_KEYRING_BACKENDS",
    "KeySlot",
    "KeyringSlot",
    "ScryptParams",
    "WrappedKey",
    "find_secure_keyring",
    "key_check_value",
    "new_key",
    "unwrap_key",
    "wrap_key",
]

KEY_BYTES = 32
KEYRING_SERVICE = "org.radplan.store"

#: Keyring backend classes (module.qualname) that keep secrets encrypted by the OS. Anything else is refused.
SECURE_KEYRING_BACKENDS = frozenset(
    {
        "keyring.backends.SecretService.Keyring",
        "keyring.backends.macOS.Keyring",
        "keyring.backends.Windows.WinVaultKeyring",
        "keyring.backends.kwallet.DBusKeyring",
    }
)


def new_key() -> bytes:
    """A fresh random 256-bit key from the OS CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def key_check_value(key: bytes) -> str:
    """A value that tells a wrong key from a damaged database without revealing anything about the key."""
    return hmac.new(key, b"radplan store key check v1", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ScryptParams:
    n: int = 2**17
    r: int = 8
    p: int = 1

    def derive(self, passphrase: str, salt: bytes) -> bytes:
        kdf = Scrypt(salt=salt, length=KEY_BYTES, n=self.n, r=self.r, p=self.p)
        return kdf.derive(passphrase.encode("utf-8"))


@dataclass(frozen=True)
class WrappedKey:
    """A store key encrypted with AES-256-GCM under a passphrase-derived key; safe to keep on disk."""

    salt: bytes
    nonce: bytes
    ciphertext: bytes
    params: ScryptParams

    def to_json(self) -> dict[str, Any]:
        enc = base64.b64encode
        return {
            "kdf": "scrypt",
            "n": self.params.n,
            "r": self.params.r,
            "p": self.params.p,
            "salt": enc(self.salt).decode(),
            "nonce": enc(self.nonce).decode(),
            "ciphertext": enc(self.ciphertext).decode(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WrappedKey:
        dec = base64.b64decode
        return cls(
            salt=dec(data["salt"]),
            nonce=dec(data["nonce"]),
            ciphertext=dec(data["ciphertext"]),
            params=ScryptParams(n=int(data["n"]), r=int(data["r"]), p=int(data["p"])),
        )


def wrap_key(key: bytes, passphrase: str, *, aad: bytes, params: ScryptParams | None = None) -> WrappedKey:
    if not passphrase:
        raise ValueError("an empty passphrase cannot protect the store key")
    params = params or ScryptParams()
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    kek = params.derive(passphrase, salt)
    return WrappedKey(salt, nonce, AESGCM(kek).encrypt(nonce, key, aad), params)


def unwrap_key(wrapped: WrappedKey, passphrase: str, *, aad: bytes) -> bytes:
    kek = wrapped.params.derive(passphrase, wrapped.salt)
    try:
        return AESGCM(kek).decrypt(wrapped.nonce, wrapped.ciphertext, aad)
    except InvalidTag:
        raise WrongKeyError("wrong passphrase: the store key could not be unwrapped; nothing was modified") from None


class KeySlot(Protocol):
    """Where one store key lives (keyring entry or wrapped-key record)."""

    def describe(self) -> str: ...
    def load(self, name: str) -> bytes: ...
    def save(self, name: str, key: bytes) -> None: ...
    def delete(self, name: str) -> None: ...


def _backend_name(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def find_secure_keyring() -> Any | None:
    """The highest-priority viable keyring backend from the secure allow-list, or None."""
    from keyring.backend import get_all_keyring

    candidates = [b for b in get_all_keyring() if _backend_name(b) in SECURE_KEYRING_BACKENDS]
    usable = []
    for backend in candidates:
        try:
            priority = float(backend.priority)
        except Exception:  # noqa: S112 - "not viable here" is reported by raising
            continue
        if priority > 0:
            usable.append((priority, backend))
    if not usable:
        return None
    usable.sort(key=lambda pb: pb[0], reverse=True)
    return usable[0][1]


class KeyringSlot:
    """Keeps store keys in a secure OS keyring, one entry per store id (and one for a pending rekey)."""

    def __init__(self, backend: Any | None = None) -> None:
        backend = backend if backend is not None else find_secure_keyring()
        if backend is None:
            raise KeyringUnavailableError(
                "no secure OS keyring is available (Secret Service, Keychain, Credential Locker or KWallet). "
                "Start a Secret Service (for example gnome-keyring) in this session, or create the store with "
                "a passphrase: RADPLAN_KEY_MODE=passphrase and RADPLAN_PASSPHRASE."
            )
        if _backend_name(backend) not in SECURE_KEYRING_BACKENDS:
            raise KeyringUnavailableError(f"refusing insecure keyring backend {_backend_name(backend)}")
        self._backend = backend

    def describe(self) -> str:
        return _backend_name(self._backend)

    def load(self, name: str) -> bytes:
        try:
            value = self._backend.get_password(KEYRING_SERVICE, name)
        except Exception as exc:
            raise KeyringUnavailableError(f"the keyring ({self.describe()}) could not be read: {exc}") from exc
        if value is None:
            raise KeyMissingError(
                f"the store key '{name}' is not in the keyring ({self.describe()}). If the store was moved or "
                "the keyring was reset, restore it from an encrypted backup: 'radplan store restore BACKUP' "
                "into an empty data directory, with the backup passphrase."
            )
        return bytes.fromhex(value)

    def save(self, name: str, key: bytes) -> None:
        self._backend.set_password(KEYRING_SERVICE, name, key.hex())
        if self.load(name) != key:
            raise KeyringUnavailableError(f"the keyring ({self.describe()}) did not keep the store key")

    def delete(self, name: str) -> None:
        from keyring.errors import PasswordDeleteError

        with contextlib.suppress(PasswordDeleteError):
            self._backend.delete_password(KEYRING_SERVICE, name)
