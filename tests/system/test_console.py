"""The console in a real browser: Playwright driving Debian's chromium (headless) against a
real assistantd on loopback, through the public API only.

Screenshots of the main pages go to the test's tmp dir; with ASSISTANTD_CONSOLE_SCREENSHOTS=1
also to docs/console/ (the README's pictures come from here).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, Route, expect, sync_playwright

from assistantd.llm.base import ChatRequest
from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import Server, SwitchRouter, echo, make_settings, start_server

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).parents[2] / "docs" / "console"


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv, stop = start_server(make_settings(tmp_path_factory.mktemp("console-data")))
    try:
        yield srv
    finally:
        stop()


@pytest.fixture(scope="module")
def browser(console_server: Server) -> Iterator[Browser]:
    # After the server: Playwright's sync API keeps an event loop running on this thread,
    # and the server's set-up uses asyncio.run.
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is required (Debian's chromium: scripts/install.sh installs it)")
    with sync_playwright() as pw:
        yield _launch(pw)


def _launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])


class Tab:
    """A page plus what it logged and requested, for the checks every test makes."""

    def __init__(self, page: Page, server: Server, shots: Path) -> None:
        self.page, self.server, self.shots = page, server, shots
        self.errors: list[str] = []
        self.urls: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.errors.append(f"pageerror: {err}"))
        page.on("request", self._request)
        page.on("response", lambda r: self.errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(msg.text)
        for secret in self.server.keys.values():
            assert secret not in msg.text, "a key was logged to the console"

    def _request(self, req: Request) -> None:
        self.urls.append(req.url)

    @property
    def root(self) -> str:
        return self.server.base_url.removesuffix("/v1")

    def sign_in(self, project: str = "alpha", admin_key: str = "") -> None:
        self.page.goto(f"{self.root}/")
        expect(self.page.get_by_role("heading", name="Sign in")).to_be_visible()
        self.page.get_by_label("API key").fill(self.server.keys[project])
        if admin_key:
            self.page.get_by_label("Admin key").fill(admin_key)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("link", name="Playground")).to_be_visible()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=False)
        if os.environ.get("ASSISTANTD_CONSOLE_SCREENSHOTS") == "1":
            DOCS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(DOCS / f"{name}.png"), full_page=False)

    def check_clean(self, allowed: tuple[str, ...] = ()) -> None:
        """No console errors (but `allowed` substrings), and no key in any URL."""
        left = [e for e in self.errors if not any(a in e for a in allowed)]
        assert not left, left
        for secret in self.server.keys.values():
            assert not any(secret in u for u in self.urls), "a key went into a URL"


@pytest.fixture
def tab(browser: Browser, console_server: Server, tmp_path: Path) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1360, "height": 820})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield Tab(page, console_server, tmp_path)
    finally:
        context.close()


@pytest.fixture
def models(console_server: Server) -> Iterator[SwitchRouter]:
    router = console_server.models
    assert isinstance(router, SwitchRouter)
    router.use(ScriptedBackend(echo))
    yield router
    router.use(ScriptedBackend(echo))


WEATHER_FN = json.dumps([{"name": "get_weather", "description": "The weather in a city",
                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                         "required": ["city"]}}])


def create_assistant(page: Page, name: str, *, functions: str = "", tools: tuple[str, ...] = (),
                     stores: str = "") -> None:
    page.get_by_role("link", name="Assistants").click()
    page.get_by_role("button", name="New assistant").click()
    form = page.get_by_role("form", name="New assistant")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Model").fill("m")
    for tool in tools:
        form.get_by_label(tool).check()
    if stores:
        form.get_by_label("Vector store ids").fill(stores)
    if functions:
        form.get_by_label("Functions (JSON array of definitions)").fill(functions)
    form.get_by_role("button", name="Create").click()
    expect(page.get_by_role("link", name=name)).to_be_visible()


def open_playground(page: Page, assistant: str) -> None:
    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Assistant").select_option(label=f"{assistant} · m")
    page.get_by_role("button", name="New", exact=True).click()


def send(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()


def test_sign_in_create_assistant_and_chat_with_streaming(tab: Tab, models: SwitchRouter) -> None:
    page = tab.page
    models.use(ScriptedBackend(echo, delay=0.02))
    tab.sign_in()
    # A bad function definition is caught before anything is sent.
    page.get_by_role("link", name="Assistants").click()
    page.get_by_role("button", name="New assistant").click()
    form = page.get_by_role("form", name="New assistant")
    form.get_by_label("Functions (JSON array of definitions)").fill('[{"name": "bad name!"}]')
    form.get_by_role("button", name="Create").click()
    expect(form.get_by_text("'name' must be 1–64 letters")).to_be_visible()
    form.get_by_role("button", name="Cancel").click()

    create_assistant(page, "Echo bot", functions=WEATHER_FN)
    expect(page.get_by_role("cell", name="get_weather")).to_be_visible()
    tab.shot("assistants")
    open_playground(page, "Echo bot")
    send(page, "Hello there, console")
    reply = page.locator(".msg.assistant").last
    # Streaming: the bubble is marked while deltas arrive, and ends with the whole text.
    expect(page.locator(".msg.assistant.streaming")).to_have_count(1)
    expect(reply).to_contain_text("You said: Hello there, console")
    expect(page.locator(".msg.assistant.streaming")).to_have_count(0)
    expect(page.get_by_role("status").first).to_contain_text("completed")
    # The new thread is in the list (GET /v1/threads), titled by its first message.
    expect(page.locator(".thread-link", has_text="Hello there, console")).to_be_visible()
    expect(page.locator(".step")).to_have_count(1)
    tab.shot("chat")

    # A second thread; then the first one opens again from the list, history and all.
    page.get_by_role("button", name="New", exact=True).click()
    send(page, "Second thread")
    expect(page.locator(".msg.assistant").last).to_contain_text("You said: Second thread")
    page.locator(".thread-link", has_text="Hello there, console").click()
    expect(page.locator(".msg.user")).to_have_text(re.compile("Hello there, console"))
    expect(page.locator(".msg.assistant")).to_contain_text("You said: Hello there, console")
    tab.check_clean()
    # The key never left session storage for local storage or a cookie.
    assert page.evaluate("Object.keys(localStorage).length") == 0
    assert page.context.cookies() == []
