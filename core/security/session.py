"""A signed-in user's session: permission checks, break-glass, and the inactivity auto-lock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import PermissionDeniedError, SessionLockedError
from core.security.roles import BREAK_GLASS_PERMISSIONS, Permission, Role, role_allows

__all__ = ["Access", "Session", "User"]


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: Role
    active: bool = True


@dataclass(frozen=True)
class Access:
    """The outcome of an authorisation: who, what, and whether break-glass was used (and why)."""

    user: User
    permission: Permission
    break_glass: bool = False
    reason: str = ""


@dataclass
class Session:
    """Locks itself after idle_timeout_s without activity; `authorize` both checks and counts as activity."""

    user: User
    idle_timeout_s: float = 600.0
    clock: Callable[[], float] = time.monotonic
    _last_activity: float = field(default=0.0, init=False)
    _locked: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._last_activity = self.clock()

    @property
    def locked(self) -> bool:
        if not self._locked and self.clock() - self._last_activity > self.idle_timeout_s:
            self._locked = True
        return self._locked

    def lock(self) -> None:
        self._locked = True

    def unlock(self, verified_user: User) -> None:
        """Unlock after the same user authenticated again (the caller verifies the password)."""
        if verified_user.id != self.user.id:
            raise PermissionDeniedError("only the user who locked the session can unlock it")
        self._locked = False
        self._last_activity = self.clock()

    def touch(self) -> None:
        if self.locked:
            raise SessionLockedError("the session is locked after inactivity: sign in again")
        self._last_activity = self.clock()

    def authorize(self, permission: Permission, *, break_glass_reason: str | None = None) -> Access:
        self.touch()
        if role_allows(self.user.role, permission):
            return Access(self.user, permission)
        if break_glass_reason is not None and permission in BREAK_GLASS_PERMISSIONS:
            reason = break_glass_reason.strip()
            if len(reason) < 10:
                raise PermissionDeniedError("break-glass access needs a reason of at least 10 characters")
            return Access(self.user, permission, break_glass=True, reason=reason)
        raise PermissionDeniedError(
            f"the {self.user.role.value} role may not {permission.value.replace('_', ' ')}"
            + (" (break-glass is possible: give a reason)" if permission in BREAK_GLASS_PERMISSIONS else "")
        )
