"""Errors that reach a person: each message says what happened and, where there is one, the fix."""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "KeyMissingError",
    "KeyringUnavailableError",
    "PermissionDeniedError",
    "RadPlanError",
    "SessionLockedError",
    "StoreCorruptError",
    "StoreError",
    "StoreExistsError",
    "StoreNotFoundError",
    "WrongKeyError",
]


class RadPlanError(Exception):
    """Base class: the message is meant for the user and must not contain patient identifiers."""


class StoreError(RadPlanError):
    """Something is wrong with the encrypted local store."""


class StoreNotFoundError(StoreError):
    """No store exists in the data directory."""


class StoreExistsError(StoreError):
    """A store already exists where a new one was to be created."""


class WrongKeyError(StoreError):
    """The key or passphrase does not open this store. Nothing was modified."""


class KeyMissingError(StoreError):
    """The store key is not where the store's metadata says it is (for example the keyring entry is gone)."""


class KeyringUnavailableError(StoreError):
    """No secure OS keyring backend is available."""


class StoreCorruptError(StoreError):
    """The database file is damaged or truncated. It is never recreated over existing data."""


class AuthenticationError(RadPlanError):
    """Unknown user, wrong password or disabled account (deliberately not said which)."""


class PermissionDeniedError(RadPlanError):
    """The user's role does not allow the action."""


class SessionLockedError(RadPlanError):
    """The session was locked after inactivity; the user must authenticate again."""
