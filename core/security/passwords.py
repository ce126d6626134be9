"""Password hashing with Argon2id (memory-hard; 64 MiB, 3 passes), and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["MIN_PASSWORD_LENGTH", "check_policy", "hash_password", "needs_rehash", "rehash_password", "verify_password"]

MIN_PASSWORD_LENGTH = 10
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=2)
# Burnt on unknown user names so that the time taken does not tell which names exist: the hash of a random,
# forgotten password with the same parameters (a literal: hashing one at import cost every command 150 ms).
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=2$C1GdPqZ4Ux7ks4XX8EKs8g$M5nBmiOgjzvgcm3T+VaAFo0d5n6rtY+X/P9PqfOMlUY"


def check_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip() != password:
        raise ValueError("passwords may not start or end with whitespace")


def hash_password(password: str) -> str:
    check_policy(password)
    return _HASHER.hash(password)


def rehash_password(password: str) -> str:
    """A fresh hash with the current parameters for a password that was just verified (no policy check: an
    account created under an older policy must still be able to sign in)."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)
