"""The composition root: the one place that builds concrete services from settings and credentials."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.security.roles import Permission
from core.security.session import Access, Session
from core.settings import Settings
from core.store.store import PassphraseSource, Store
from core.store.users import UserRepository, authorize

if TYPE_CHECKING:  # the worker host is imported on demand: most commands never start a worker
    from engines.host import WorkerHost

__all__ = ["AppContext", "Credentials"]


@dataclass(frozen=True)
class Credentials:
    """How to obtain what the person must supply: user name, password, store passphrase."""

    user: Callable[[], str]
    password: Callable[[str], str]
    passphrase: PassphraseSource


@dataclass
class AppContext:
    settings: Settings
    credentials: Credentials
    _store: Store | None = field(default=None, init=False)
    _session: Session | None = field(default=None, init=False)
    _worker: WorkerHost | None = field(default=None, init=False)

    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.settings.data_dir, passphrase=self.credentials.passphrase)
        return self._store

    def store_needs_passphrase(self) -> bool:
        """The store is in passphrase mode (reads store.json only; False when none is open or exists yet)."""
        return self._store is None and Store.needs_passphrase(self.settings.data_dir)

    def open_store_with_passphrase(self, phrase: str) -> Store:
        """Open the store with a passphrase typed in the window (not asked from the credentials) and keep it as
        this process's store, so that ensure_worker() and the rest use it. A wrong passphrase raises WrongKeyError
        and leaves nothing open. The passphrase is used for this one open and not kept."""
        if self._store is None:
            self._store = Store.open(self.settings.data_dir, passphrase=lambda _prompt: phrase)
        return self._store

    def users(self) -> UserRepository:
        return UserRepository(self.store())

    def session(self) -> Session:
        """Authenticate (once per process) the user named by --user / RADPLAN_USER or a prompt."""
        if self._session is None:
            name = self.credentials.user()
            user = self.users().authenticate(name, self.credentials.password(name))
            self._session = Session(user, idle_timeout_s=self.settings.auto_lock_minutes * 60)
        return self._session

    def authorize(self, permission: Permission, *, break_glass_reason: str | None = None) -> Access:
        """Sign in if needed, check the permission; refusals and break-glass grants are audited."""
        return authorize(self.store(), self.session(), permission, break_glass_reason=break_glass_reason)

    def ensure_worker(self) -> WorkerHost:
        """The background worker for this data dir: started (and supervised) unless one of ours is alive. When
        another process's worker holds the single-worker lock, ours exits at once and that worker serves the queue.
        The store key is handed over a pipe (a passphrase store cannot be opened by the worker on its own)."""
        from core.jobs import JobQueue
        from engines.host import WorkerHost

        store = self.store()
        if self._worker is None:
            self._worker = WorkerHost(self.settings.data_dir, key=store.handover_key())
        if not self._worker.is_alive():
            self._worker.start()
            self._worker.supervise(JobQueue(store))
        return self._worker

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        if self._store is not None:
            self._store.close()
            self._store = None
