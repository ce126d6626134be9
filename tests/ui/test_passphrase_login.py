"""The workstation window asks for the store passphrase itself (passphrase-mode stores, no RADPLAN_PASSPHRASE):
real stores, the real composition root (AppContext + gui_cmds' wiring), a real window under Xvfb."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.bootstrap import AppContext, Credentials
from app.cli.common import env_or_prompt
from app.cli.gui_cmds import workstation_context
from core.security.roles import Permission, Role
from core.security.session import Access
from core.settings import Settings
from core.store.meta import KeyMode
from core.store.store import Store
from core.store.users import UserRepository
from ui.app import create_application
from ui.main_window import MainWindow

pytestmark = pytest.mark.qt

PHRASE = "ward-7-store-passphrase"
ADMIN, ADMIN_PW = "admin", "admin-password-1"
PHYS, PHYS_PW = "phys1", "physicist-pw-01"


def _make_store(data_dir: Path, key_mode: KeyMode) -> None:
    """A real store with an admin and a physicist (a physicist never starts the engine worker), then closed."""
    with Store.create(data_dir, key_mode=key_mode, passphrase=lambda _p: PHRASE) as store:
        users = UserRepository(store)
        admin = users.create_first_admin(ADMIN, ADMIN_PW)
        users.add(Access(admin, Permission.MANAGE_USERS), PHYS, Role.PHYSICIST, PHYS_PW)


def _app(data_dir: Path, asked: list[str], passphrase: Any = None) -> AppContext:
    """The composition root as `radplan gui` builds it; the terminal passphrase source only records being asked."""

    def terminal(prompt: str) -> str:
        asked.append(prompt)
        raise AssertionError("the window fell back to the terminal passphrase prompt")

    def no_user() -> str:
        raise AssertionError("the window signs in itself")

    def no_password(_name: str) -> str:
        raise AssertionError("the window signs in itself")

    return AppContext(Settings(data_dir=data_dir), Credentials(no_user, no_password, passphrase or terminal))


def _window(qtbot: Any, app: AppContext) -> MainWindow:
    qt_app = create_application()
    qt_app.setProperty("radplan_no_dialogs", True)
    window = MainWindow(workstation_context(app, "test backend"))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def _click_sign_in(window: MainWindow, name: str, password: str, phrase: str | None) -> None:
    window.login.user.setText(name)
    window.login.password.setText(password)
    if phrase is not None:
        window.login.passphrase.setText(phrase)
    window.login.button.click()


def _close(window: MainWindow, app: AppContext) -> None:
    window.close()
    assert window.runner.wait_idle(30000)
    app.close()


@pytest.fixture
def no_env_passphrase(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("RADPLAN_PASSPHRASE", raising=False)
    yield


def test_needs_passphrase_reads_only_store_json(tmp_path: Path) -> None:
    assert Store.needs_passphrase(tmp_path / "none") is False  # no store: the open says so later
    _make_store(tmp_path / "p", "passphrase")
    assert Store.needs_passphrase(tmp_path / "p") is True
    (tmp_path / "p" / "radplan.db").rename(tmp_path / "p" / "moved.db")  # no database needed to answer
    assert Store.needs_passphrase(tmp_path / "p") is True
    (tmp_path / "p" / "store.json").write_text("{not json", encoding="utf-8")
    assert Store.needs_passphrase(tmp_path / "p") is False  # unreadable: the open reports it as corrupt


def test_window_asks_for_the_passphrase_and_retries_after_a_wrong_one(
    qtbot: Any, tmp_path: Path, no_env_passphrase: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data_dir = tmp_path / "store"
    _make_store(data_dir, "passphrase")
    asked: list[str] = []
    app = _app(data_dir, asked)
    window = _window(qtbot, app)
    login = window.login
    assert window.pages.currentIndex() == 0
    assert login.passphrase.isVisible() and login.passphrase.objectName() == "login_passphrase"
    assert login.passphrase.echoMode() == login.passphrase.EchoMode.Password
    assert login.passphrase_note.isVisible() and "passphrase" in login.passphrase_note.text()
    assert login.button.isEnabled() and window.store is None  # nothing opened, nothing asked yet

    _click_sign_in(window, PHYS, PHYS_PW, "not-the-passphrase")
    assert login.passphrase.text() == ""  # taken from the field at once
    qtbot.waitUntil(lambda: bool(login.error.text()) and login.button.isEnabled(), timeout=20000)
    error = login.error.text()
    assert "wrong passphrase" in error and "Traceback" not in error
    assert window.store is None and window.session is None and app._store is None  # still closed
    assert login.user.text() == PHYS and login.password.text() == PHYS_PW  # only the passphrase is asked again
    assert login.passphrase.isVisible() and window.pages.currentIndex() == 0

    login.button.click()  # empty passphrase: asked for, nothing opened
    assert "Enter the store passphrase" in login.error.text() and login.button.isEnabled() and app._store is None

    login.passphrase.setText(PHRASE)
    login.button.click()
    qtbot.waitUntil(lambda: window.pages.currentIndex() == 1, timeout=30000)
    assert "phys1 (physicist)" in window._status_labels["user"].text()
    assert str(data_dir) in window._status_labels["store"].text()
    assert not login.passphrase.isVisible() and not login.wants_passphrase and login.passphrase.text() == ""
    assert window.store is app._store is app.store()  # the process's store: ensure_worker() & co use this one
    assert not workstation_context(app, "x").needs_passphrase()  # an open store is never asked for again

    window.lock()  # the lock screen needs only the user's password
    assert window.pages.currentIndex() == 0 and not login.passphrase.isVisible()
    _click_sign_in(window, PHYS, PHYS_PW, None)
    qtbot.waitUntil(lambda: window.pages.currentIndex() == 1, timeout=20000)
    assert asked == []  # never fell back to the terminal prompt
    assert PHRASE not in caplog.text and "not-the-passphrase" not in caplog.text
    _close(window, app)


def test_right_passphrase_wrong_password_keeps_the_store_open(
    qtbot: Any, tmp_path: Path, no_env_passphrase: None
) -> None:
    data_dir = tmp_path / "store"
    _make_store(data_dir, "passphrase")
    app = _app(data_dir, [])
    window = _window(qtbot, app)
    _click_sign_in(window, PHYS, "wrong-password", PHRASE)
    qtbot.waitUntil(lambda: "Sign-in failed" in window.login.error.text(), timeout=30000)
    assert window.store is not None and not window.login.passphrase.isVisible()  # the store stays open
    assert window.login.button.isEnabled() and window.pages.currentIndex() == 0
    _click_sign_in(window, ADMIN, ADMIN_PW, None)
    qtbot.waitUntil(lambda: window.pages.currentIndex() == 1, timeout=20000)
    assert "admin (admin)" in window._status_labels["user"].text()
    _close(window, app)


def test_passphrase_from_the_environment_is_used_without_asking(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "store"
    _make_store(data_dir, "passphrase")
    monkeypatch.setenv("RADPLAN_PASSPHRASE", PHRASE)
    app = _app(data_dir, [], lambda prompt: env_or_prompt("RADPLAN_PASSPHRASE", prompt))  # as app/cli/main.py
    window = _window(qtbot, app)
    assert not window.login.passphrase.isVisible()
    qtbot.waitUntil(lambda: window.store is not None and window.login.button.isEnabled(), timeout=30000)
    _click_sign_in(window, PHYS, PHYS_PW, None)
    qtbot.waitUntil(lambda: window.pages.currentIndex() == 1, timeout=20000)
    _close(window, app)


@pytest.mark.keyring
def test_keyring_store_shows_no_passphrase_field(qtbot: Any, tmp_path: Path, no_env_passphrase: None) -> None:
    data_dir = tmp_path / "store"
    _make_store(data_dir, "keyring")
    asked: list[str] = []
    app = _app(data_dir, asked)
    window = _window(qtbot, app)
    assert not window.login.passphrase.isVisible() and not window.login.passphrase_note.isVisible()
    qtbot.waitUntil(lambda: window.store is not None and window.login.button.isEnabled(), timeout=30000)
    _click_sign_in(window, PHYS, PHYS_PW, None)
    qtbot.waitUntil(lambda: window.pages.currentIndex() == 1, timeout=20000)
    assert asked == [] and window.store is app._store
    _close(window, app)


def test_store_already_open_in_the_process_shows_no_passphrase_field(
    qtbot: Any, tmp_path: Path, no_env_passphrase: None
) -> None:
    data_dir = tmp_path / "store"
    _make_store(data_dir, "passphrase")
    app = _app(data_dir, [])
    store = app.open_store_with_passphrase(PHRASE)
    window = _window(qtbot, app)
    assert not window.login.passphrase.isVisible()
    qtbot.waitUntil(lambda: window.store is store and window.login.button.isEnabled(), timeout=20000)
    _close(window, app)
