"""A real browser for end-to-end tests: Debian's headless Chromium (`apt-get install chromium`;
.ci/run installs it) driven by Playwright, never a browser Playwright downloads itself. Each
context gets a fresh profile directory, and every request it makes is recorded, so a test can
show that a page loaded nothing from anywhere else."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn

from bus.ops.embedded import free_port

# Debian's chromium package: the wrapper on PATH, else the binary it runs.
CANDIDATES = ("chromium", "/usr/lib/chromium/chromium")
# NOTES.md's flags; `--headless` itself comes from `headless=True`.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_binary() -> str:
    """Debian's chromium, or the test fails saying how to install it: a skipped browser test would
    hide the page it proves (.ci/run installs chromium itself)."""
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.fail("Debian's chromium is not installed: `apt-get install -y chromium` (.ci/run does)")


@dataclass
class Browsing:
    """An open browser context; `requests` holds the URL of every request any of its pages made."""

    context: object  # playwright.async_api.BrowserContext
    requests: list[str] = field(default_factory=list)

    async def new_page(self):
        page = await self.context.new_page()
        page.on("request", lambda request: self.requests.append(request.url))
        return page


@asynccontextmanager
async def chromium(profile: Path, **context_options) -> AsyncIterator[Browsing]:
    """Headless Chromium with a fresh profile in `profile` (context options: viewport, is_mobile…)."""
    from playwright.async_api import async_playwright  # only the browser tests need it

    binary = chromium_binary()
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile), executable_path=binary, headless=True, args=FLAGS, **context_options
        )
        try:
            yield Browsing(context)
        finally:
            await context.close()


@asynccontextmanager
async def serve(app) -> AsyncIterator[str]:
    """`app` served by a real uvicorn on a free loopback port; its base URL while it runs."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()  # raises what stopped it
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
