"""The GUI's sign-in state: who is signed in, the inactivity auto-lock, unlock by the same user, sign-out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import AuthenticationError, PermissionDeniedError
from core.security.roles import Permission, Role, role_allows
from core.security.session import Access, Session, User
from core.store.store import Store
from core.store.users import UserRepository, authorize

__all__ = ["PANELS", "SessionModel", "visible_panels"]

#: Panel name -> the permission a role needs to see it (admins see settings, not patients).
PANELS: dict[str, Permission] = {
    "worklist": Permission.READ_PATIENT_DATA,
    "viewer": Permission.READ_PATIENT_DATA,
    "segmentation": Permission.RUN_ANALYSIS,
    "analysis": Permission.READ_PATIENT_DATA,
    "plan": Permission.READ_PATIENT_DATA,
    "jobs": Permission.READ_PATIENT_DATA,
    "settings": Permission.MANAGE_SETTINGS,
}


def visible_panels(role: Role) -> list[str]:
    return [name for name, permission in PANELS.items() if role_allows(role, permission)]


@dataclass
class SessionModel:
    """Wraps core.security.session.Session for an interactive program. Call `activity()` on user input and
    `check_idle()` from a timer: it returns True once the session has just locked."""

    store: Store
    idle_timeout_s: float
    clock: Callable[[], float] = time.monotonic
    session: Session | None = field(default=None, init=False)

    @property
    def user(self) -> User | None:
        return self.session.user if self.session else None

    @property
    def signed_in(self) -> bool:
        return self.session is not None

    @property
    def locked(self) -> bool:
        return self.session is not None and self.session.locked

    def sign_in(self, name: str, password: str) -> User:
        """Authenticate against the store's users (audited by the repository); raises AuthenticationError."""
        if not name.strip() or not password:
            raise AuthenticationError("enter your user name and password")
        user = UserRepository(self.store).authenticate(name.strip(), password)
        self.session = Session(user, idle_timeout_s=self.idle_timeout_s, clock=self.clock)
        return user

    def unlock(self, password: str) -> None:
        if self.session is None:
            raise AuthenticationError("nobody is signed in")
        user = UserRepository(self.store).authenticate(self.session.user.name, password)
        self.session.unlock(user)

    def lock(self) -> None:
        if self.session is not None:
            self.session.lock()

    def sign_out(self) -> None:
        self.session = None

    def activity(self) -> None:
        if self.session is not None and not self.session.locked:
            self.session.touch()

    def check_idle(self) -> bool:
        """True when this check found the session newly locked by inactivity."""
        if self.session is None:
            return False
        was = self.session._locked
        return self.session.locked and not was

    def access(self, permission: Permission) -> Access:
        """Authorise one action (audited refusals); raises when locked, signed out or not allowed."""
        if self.session is None:
            raise PermissionDeniedError("sign in first")
        return authorize(self.store, self.session, permission)

    def allows(self, permission: Permission) -> bool:
        return self.session is not None and role_allows(self.session.user.role, permission)
