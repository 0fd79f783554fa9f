"""The console in a real browser: Playwright driving Debian's chromium (headless) against a
real assistantd on loopback, through the public API only.

Screenshots of the main pages go to the test's tmp dir; with ASSISTANTD_CONSOLE_SCREENSHOTS=1
also to docs/console/ (the README's pictures come from here).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import openai
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Route,
    expect,
    sync_playwright,
)

from assistantd.llm.base import ChatRequest, ModelError
from assistantd.testing.admin_api import DAY, AdminApi
from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import Server, SwitchRouter, echo, make_settings, start_server

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).parents[2] / "docs" / "console"


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # A key revoked by the CLI (another process) is refused within the auth cache's time.
    srv, stop = start_server(
        make_settings(tmp_path_factory.mktemp("console-data"), auth_cache_seconds=0.5)
    )
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
        page.on(
            "response",
            lambda r: self.errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
        )

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


WEATHER_FN = json.dumps(
    [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
)


def create_assistant(
    page: Page, name: str, *, functions: str = "", tools: tuple[str, ...] = (), stores: str = ""
) -> None:
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
    models.use(ScriptedBackend(echo, delay=0.3))  # slow enough to see the streaming state
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
    # The list filters on metadata server-side (metadata[title]=...).
    page.get_by_label("Filter by metadata").fill("title=Second thread")
    page.get_by_label("Filter by metadata").press("Enter")
    expect(page.locator(".thread-link")).to_have_count(1)
    expect(page.locator(".thread-link")).to_contain_text("Second thread")

    # Edit the assistant, then delete it.
    page.get_by_role("link", name="Assistants").click()
    page.get_by_role("button", name="Edit").click()
    form = page.get_by_role("form", name="Edit assistant")
    expect(form.get_by_label("Functions (JSON array of definitions)")).to_have_value(
        re.compile("get_weather")
    )
    form.get_by_label("Instructions").fill("Be brief.")
    form.get_by_label("Temperature").fill("0.3")
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("Saved Echo bot.")
    with tab.server.client() as client:
        (assistant,) = [
            a for a in client.beta.assistants.list(limit=100).data if a.name == "Echo bot"
        ]
    assert (assistant.instructions, assistant.temperature) == ("Be brief.", 0.3)
    assert [t.type for t in assistant.tools] == ["function"]
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete Echo bot").click()
    expect(page.get_by_text("No assistants yet: create one.")).to_be_visible()
    tab.check_clean()
    # The key never left session storage for local storage or a cookie.
    assert page.evaluate("Object.keys(localStorage).length") == 0
    assert page.context.cookies() == []


def test_answer_a_function_call_by_hand(tab: Tab, models: SwitchRouter) -> None:
    page = tab.page
    backend = models.use(
        ScriptedBackend(
            [tool_call_turn("get_weather", {"city": "Paris"}), text_turn("It is sunny in Paris.")]
        )
    )
    tab.sign_in()
    create_assistant(page, "Weather bot", functions=WEATHER_FN)
    open_playground(page, "Weather bot")
    send(page, "Weather in Paris?")
    action = page.get_by_role("form", name="Function outputs")
    expect(action).to_contain_text('{"city": "Paris"}')
    expect(page.get_by_role("status").first).to_contain_text("requires_action")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    action.get_by_label("Output of get_weather").fill('{"sky": "sunny", "c": 21}')
    action.get_by_role("button", name="Submit outputs").click()
    expect(page.locator(".msg.assistant").last).to_contain_text("It is sunny in Paris.")
    expect(page.get_by_role("status").first).to_contain_text("completed")
    # The inspector shows both steps, the call with its arguments and the output we typed.
    expect(page.locator(".step")).to_have_count(2)
    expect(page.locator(".step").first).to_contain_text('{"sky": "sunny", "c": 21}')
    tool = next(m for m in backend.requests[1].messages if m.role == "tool")
    assert tool.content == '{"sky": "sunny", "c": 21}'
    tab.shot("inspector")
    tab.check_clean()


def test_cancel_mid_stream(tab: Tab, models: SwitchRouter) -> None:
    page = tab.page
    models.use(ScriptedBackend(lambda _r: text_turn("word " * 400), delay=0.05))
    tab.sign_in()
    create_assistant(page, "Slow bot")
    open_playground(page, "Slow bot")
    send(page, "Talk a lot")
    expect(page.locator(".msg.assistant.streaming")).to_contain_text("word word")
    page.get_by_role("button", name="Cancel run").click()
    expect(page.get_by_role("status").first).to_contain_text("cancelled")
    expect(page.get_by_role("button", name="Cancel run")).to_be_disabled()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    tab.check_clean()


def test_a_dropped_stream_resumes_from_the_last_event_id(tab: Tab, models: SwitchRouter) -> None:
    page = tab.page
    models.use(ScriptedBackend(echo))
    resumed: list[str | None] = []

    def cut(route: Route) -> None:
        # The real stream, cut after the first message delta: as if the connection dropped.
        body = route.fetch().text()
        frames = body.split("\n\n")
        first_delta = next(i for i, f in enumerate(frames) if "event: thread.message.delta" in f)
        route.fulfill(
            status=200,
            headers={"content-type": "text/event-stream"},
            body="\n\n".join(frames[: first_delta + 1]) + "\n\n",
        )

    tab.sign_in()
    create_assistant(page, "Resume bot")
    open_playground(page, "Resume bot")
    page.route(re.compile(r".*/v1/threads/thread_\w+/runs$"), cut)
    page.on(
        "request",
        lambda r: (
            resumed.append(r.headers.get("last-event-id")) if r.url.endswith("/events") else None
        ),
    )
    send(page, "one two three four five")
    expect(page.locator(".msg.assistant").last).to_have_text(
        re.compile("You said: one two three four five$")
    )
    expect(page.get_by_role("status").first).to_contain_text("completed")
    assert len(resumed) == 1 and resumed[0] is not None and resumed[0].isdigit()
    tab.check_clean()


ZEBRA = b"The Zebra policy: employees may bring a zebra to the office on Fridays only."


def cite(request: ChatRequest) -> Any:
    tool = next((m for m in reversed(request.messages) if m.role == "tool"), None)
    if tool is None:
        return tool_call_turn("file_search", {"queries": ["zebra office policy"]})
    marker = (tool.content or "").split("\n", 1)[0]
    return text_turn(f"Zebras come **on Fridays** {marker}.")


def test_upload_attach_and_see_a_citation(tab: Tab, models: SwitchRouter) -> None:
    page = tab.page
    models.use(ScriptedBackend(cite))
    tab.sign_in()
    page.get_by_role("link", name="Files").click()
    page.get_by_label("File", exact=True).set_input_files(
        files=[{"name": "zebra.txt", "mimeType": "text/plain", "buffer": ZEBRA}]
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("cell", name="zebra.txt")).to_be_visible()
    page.get_by_label("File", exact=True).set_input_files(
        files=[
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\nnot a pdf"}
        ]
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("cell", name="broken.pdf")).to_be_visible()
    page.get_by_label("New store").fill("policies")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("button", name="policies").click()
    store = page.locator("section", has=page.get_by_role("heading", name="Store policies"))
    for name in ("zebra.txt", "broken.pdf"):
        store.get_by_label("File to attach").select_option(label=name)
        store.get_by_role("button", name="Attach").click()
    # Ingestion status, polled while a file is in progress; a failure shows its error.
    expect(store.get_by_role("cell", name="completed")).to_be_visible(timeout=90_000)
    expect(store.get_by_role("cell", name="failed")).to_be_visible(timeout=90_000)
    expect(store.locator("td[data-label=Error]").filter(has_text=re.compile(r"\w"))).to_have_count(
        1
    )
    expect(store.get_by_role("row", name=re.compile("^broken.pdf failed"))).to_contain_text(
        "not a readable PDF"
    )
    expect(page.get_by_role("cell", name="1/2 ready, 1 failed")).to_be_visible()
    page.get_by_label("Search").fill("zebra on fridays")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(".chunk").first).to_contain_text("zebra.txt")
    tab.shot("files")
    store_id = page.locator("code", has_text=re.compile("^vs_")).first.inner_text()

    create_assistant(page, "Policy bot", tools=("file_search",), stores=store_id)
    open_playground(page, "Policy bot")
    send(page, "When can I bring a zebra?")
    reply = page.locator(".msg.assistant").last
    expect(reply.locator("strong")).to_have_text("on Fridays")
    expect(reply.get_by_role("link", name="Citation 1")).to_be_visible()
    expect(reply.get_by_role("list", name="Citations")).to_contain_text("zebra.txt")
    assert "【" not in reply.inner_text()
    expect(page.locator(".step").first).to_contain_text("zebra.txt")
    # The footnote links to the cited file: it downloads with the key, never a key in a URL.
    with page.expect_download() as download:
        reply.get_by_role("link", name="zebra.txt").click()
    assert download.value.suggested_filename == "zebra.txt"
    assert Path(download.value.path()).read_bytes() == ZEBRA
    tab.shot("chat-citations")
    tab.check_clean()


PLOT = (
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "print('plotting')\nplt.bar(['a', 'b', 'c'], [3, 1, 2]); plt.show()\n"
)


def test_code_interpreter_code_logs_and_image(tab: Tab, models: SwitchRouter) -> None:
    page = tab.page
    models.use(
        ScriptedBackend(
            [tool_call_turn("code_interpreter", {"code": PLOT}), text_turn("Here is the plot.")],
            delay=1.0,  # the code arrives in two fragments a second apart
        )
    )
    tab.sign_in()
    create_assistant(page, "Plot bot", tools=("code_interpreter",))
    open_playground(page, "Plot bot")
    send(page, "Plot something")
    # The code shows while the model is still writing it (run step deltas).
    expect(page.locator(".msg.tool pre.code")).to_contain_text("import matplotlib")
    assert "plt.show()" not in page.locator(".msg.tool pre.code").inner_text()
    expect(page.locator(".msg.assistant").last).to_contain_text("Here is the plot.", timeout=90_000)
    # The code streamed into its bubble, which the finished call then replaced: one bubble.
    expect(page.locator(".msg.tool")).to_have_count(1)
    tool = page.locator(".msg.tool").last
    expect(tool.locator("pre.code")).to_contain_text("plt.bar")
    expect(tool.locator("pre.logs")).to_contain_text("plotting")
    img = tool.locator("img.inline-image")
    expect(img).to_have_attribute("src", re.compile("^blob:"))
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    tab.shot("code-interpreter")
    tab.check_clean()


ADMIN_KEY = "sk-admin-console-test"
ORGANIZATION = re.compile(r".*/v1/organization/.*")


def serve_admin(page: Page, admin: AdminApi) -> None:
    """Route the page's admin API calls to `admin` (the spec's shapes, in memory)."""

    def handle(route: Route) -> None:
        req = route.request
        url = urlsplit(req.url)
        body = json.loads(req.post_data) if req.post_data else None
        status, answer = admin.answer(
            req.method, url.path, parse_qs(url.query), body, req.headers.get("authorization")
        )
        route.fulfill(status=status, content_type="application/json", body=json.dumps(answer))

    page.route(ORGANIZATION, handle)


def test_admin_pages_degrade_to_a_banner_on_404(tab: Tab) -> None:
    page = tab.page
    # Whatever this server has, the admin API answers 404 here: the console must say so.
    page.route(
        ORGANIZATION,
        lambda route: route.fulfill(
            status=404,
            content_type="application/json",
            body=json.dumps(
                {
                    "error": {
                        "message": "Invalid URL",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                }
            ),
        ),
    )
    tab.sign_in(admin_key=ADMIN_KEY)
    for link, what in (("Projects", "The projects admin API"), ("Keys", "The projects admin API")):
        page.get_by_role("link", name=link).click()
        expect(page.get_by_role("alert")).to_contain_text(
            f"{what} is not available on this server (404)."
        )
    page.get_by_role("link", name="Usage").click()
    expect(page.get_by_text("Usage is not available on this server (404).")).to_be_visible()
    expect(page.get_by_text("Costs is not available on this server (404).")).to_be_visible()
    page.get_by_role("link", name="Playground").click()
    expect(page.get_by_role("heading", name="Threads")).to_be_visible()
    expect(page.get_by_role("alert")).to_be_hidden()
    tab.check_clean(allowed=("404",))


def test_admin_projects_keys_limits_and_usage(tab: Tab) -> None:
    page = tab.page
    admin = AdminApi(ADMIN_KEY)
    prod = admin.add_project("Production")
    admin.add_key(prod["id"], "ci-runner")
    today = int(time.time()) // DAY * DAY
    for d, (a, b) in enumerate(
        [(1200, 300), (800, 0), (2500, 900), (400, 1600), (0, 0), (1900, 700), (3100, 1200)]
    ):
        day = today - (6 - d) * DAY
        admin.usage += [
            (day, "gpt-4o", a, a // 3, a // 100, a / 1000),
            (day, "gpt-4o-mini", b, b // 2, b // 50, b / 5000),
        ]
    serve_admin(page, admin)
    tab.sign_in()  # no admin key yet: the admin pages ask for it
    page.get_by_role("link", name="Projects").click()
    page.get_by_label("Admin key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("button", name="Production")).to_be_visible()
    page.get_by_label("New project").fill("Staging")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("button", name="Staging")).to_be_visible()
    page.get_by_role("button", name="Production").click()
    page.get_by_label("Requests per minute for m").fill("120")
    page.get_by_label("Requests per minute for m").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Saved.")
    assert admin.rate_limits[prod["id"]][0]["max_requests_per_1_minute"] == 120
    expect(page.get_by_text("No spend limit set (404).")).to_be_visible()
    page.get_by_label("USD per month").fill("250")
    page.get_by_role("button", name="Set").click()
    expect(page.get_by_text("250.00 USD per month (enforcing)")).to_be_visible()

    page.get_by_role("link", name="Keys").click()
    # The projects page's "New project" field also matches a loose "Project" label, and it
    # stays until the keys page has rendered: wait for that page, then match exactly.
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    page.get_by_label("Project", exact=True).select_option(label="Production")
    expect(page.get_by_role("cell", name="ci-runner", exact=True).first).to_be_visible()
    page.get_by_label("New service account").fill("web-app")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret").inner_text()
    assert secret.startswith("sk-svcacct-")
    expect(page.get_by_role("cell", name="web-app", exact=True).first).to_be_visible()
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Revoke Secret Key of ci-runner").click()
    expect(page.get_by_role("cell", name="ci-runner", exact=True)).to_have_count(0)
    owners = [k["owner"]["service_account"]["name"] for k in admin.keys[prod["id"]]]
    assert owners == ["web-app"]
    # A service account's key is revoked by deleting its account, as OpenAI requires.
    assert ("DELETE", f"/v1/organization/projects/{prod['id']}/service_accounts/") in [
        (m, p.rsplit("/", 1)[0] + "/") for m, p in admin.calls
    ]

    page.get_by_role("link", name="Usage").click()
    tokens = page.get_by_role("img", name=re.compile("^Tokens by day and model"))
    expect(tokens).to_be_visible()
    # 7 days x 2 models, less the empty day (2 bars) and the day without gpt-4o-mini (1)
    expect(page.locator(".chart").first.locator("rect")).to_have_count(11)
    expect(page.locator(".legend").first).to_contain_text("gpt-4o-mini")
    expect(page.get_by_role("img", name=re.compile("^Cost by day"))).to_be_visible()
    tab.shot("usage")
    tab.check_clean(allowed=("404",))  # the spend limit's "none set"


def test_phone_width_and_keyboard_only(
    browser: Browser, console_server: Server, tmp_path: Path, models: SwitchRouter
) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    tab = Tab(page, console_server, tmp_path)
    try:
        tab.sign_in()
        create_assistant(page, "Pocket bot")
        page.get_by_role("link", name="Playground").click()
        page.get_by_label("Assistant").select_option(label="Pocket bot · m")
        page.get_by_role("button", name="New", exact=True).click()
        # Keyboard only: focus the composer, type, Ctrl+Enter sends.
        page.get_by_label("Message").focus()
        page.keyboard.type("Sent from the keyboard")
        page.keyboard.press("Control+Enter")
        expect(page.locator(".msg.assistant").last).to_contain_text(
            "You said: Sent from the keyboard"
        )
        # Nothing is wider than the phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.get_by_role("heading", name="Threads").scroll_into_view_if_needed()
        page.locator(".conversation").scroll_into_view_if_needed()
        tab.shot("phone-chat")
        tab.check_clean()
    finally:
        context.close()


def cli(server: Server, *args: str) -> str:
    """`assistantd ...` on the console server's database, as an operator runs it."""
    env = dict(os.environ, ASSISTANTD_DATA_DIR=str(server.settings.data_dir))
    done = subprocess.run(
        [sys.executable, "-m", "assistantd", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_wrong_key_and_a_revoked_key_are_refused(tab: Tab, console_server: Server) -> None:
    page = tab.page
    page.goto(f"{tab.root}/console/")
    page.get_by_label("API key").fill("sk-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Sign-in failed")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0  # a refused key is not kept

    secret = (
        cli(console_server, "keys", "create", "--name", "console-revoke", "--project", "alpha")
        .strip()
        .splitlines()[-1]
    )
    key_id = next(
        line.split()[0]
        for line in cli(console_server, "keys", "list").splitlines()
        if "console-revoke" in line
    )
    page.get_by_label("API key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Assistants").click()
    expect(page.get_by_role("heading", name="Assistants")).to_be_visible()
    cli(console_server, "keys", "revoke", key_id)
    page.get_by_role("link", name="Files").click()
    expect(page.get_by_role("alert")).to_contain_text("Check the key")
    assert secret not in page.content()
    tab.check_clean(allowed=("401",))


def test_model_output_is_text_never_markup(tab: Tab, models: SwitchRouter) -> None:
    page = tab.page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    models.use(
        ScriptedBackend(
            lambda _r: text_turn(
                "<img src=x onerror=alert(1)> **bold** and `code`\n\n- one\n- two\n\n[docs](javascript:alert(2))"
            )
        )
    )
    tab.sign_in()
    create_assistant(page, "Markup bot")
    open_playground(page, "Markup bot")
    send(page, "Say something tricky")
    reply = page.locator(".msg.assistant").last
    expect(reply.locator("strong")).to_have_text("bold")
    expect(reply.locator("code")).to_have_text("code")
    expect(reply.locator("li")).to_have_text(["one", "two"])
    expect(reply).to_contain_text("<img src=x onerror=alert(1)>")
    expect(reply.locator("img")).to_have_count(0)
    expect(reply.locator("a")).to_have_count(0)  # only http(s) links become links
    assert dialogs == []
    tab.check_clean()


def test_thread_list_pages_and_a_failed_run_says_why(tab: Tab, models: SwitchRouter) -> None:
    page = tab.page
    with tab.server.client("beta") as client:
        made = [client.beta.threads.create(metadata={"title": f"old {i}"}).id for i in range(32)]
    tab.sign_in("beta")
    create_assistant(page, "Failing bot")
    page.get_by_role("link", name="Playground").click()
    expect(page.locator(".thread-link")).to_have_count(30)
    expect(page.locator(".thread-link").first).to_contain_text("old 31")
    page.get_by_role("button", name="More threads").click()
    expect(page.locator(".thread-link")).to_have_count(32)
    expect(page.locator(".thread-link").last).to_contain_text("old 0")
    expect(page.get_by_role("button", name="More threads")).to_have_count(0)
    assert page.locator(".thread-link").last.get_attribute("data-thread-id") == made[0]

    models.use(ScriptedBackend([ModelError("The model is overloaded.")]))
    page.get_by_label("Assistant").select_option(label="Failing bot · m")
    page.get_by_role("button", name="New", exact=True).click()
    send(page, "Hello?")
    expect(page.get_by_role("status").first).to_contain_text("failed")
    expect(page.get_by_role("status").first).to_contain_text("The model is overloaded.")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    tab.check_clean()


def test_revoke_a_key_on_the_real_admin_api_and_see_it_fail(tab: Tab) -> None:
    """Against the server's own admin API (`/v1/organization`, admin keys): create a key
    through a service account, use it, revoke it in the console, and it is refused."""
    admin_key = tab.server.keys.get("admin")
    if admin_key is None:
        pytest.skip("this server has no admin API (assistantd.testing.server made no admin key)")
    page = tab.page
    tab.sign_in(admin_key=admin_key)
    page.get_by_role("link", name="Projects").click()
    expect(page.locator("code", has_text=re.compile("^alpha$"))).to_be_visible()
    page.get_by_role("link", name="Keys").click()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    page.get_by_label("Project", exact=True).select_option(value="alpha")
    page.get_by_label("New service account").fill("console-sa")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret").inner_text()
    with tab.server.client() as alpha:
        client = alpha.with_options(api_key=secret)
        assert client.beta.assistants.list().object == "list"
        expect(page.get_by_role("cell", name="console-sa", exact=True)).to_be_visible()
        page.once("dialog", lambda d: d.accept())
        page.get_by_role("button", name=re.compile("^Revoke .* of console-sa$")).click()
        expect(page.get_by_role("cell", name="console-sa", exact=True)).to_have_count(0)
        with pytest.raises(openai.AuthenticationError):
            client.beta.assistants.list()
    tab.check_clean(allowed=("404",))  # pages this admin API may not serve yet
