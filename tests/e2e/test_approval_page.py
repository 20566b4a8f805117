"""The approval page in a real browser (Debian's headless Chromium, driven by Playwright) over
real HTTP: sign in with an API key, see a pending approval with its findings, approve it with a
note, see the decision. First against a fake approvals core (the page alone), then against the
whole mesh (a release that escalates, decided in the browser, its outcome on the bus).

`UPDATE_SCREENSHOTS=1 pytest tests/e2e/test_approval_page.py` refreshes docs/approval-page.png."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from playwright.async_api import expect

from bus.client import MeshClient
from contracts.outcomes import Outcome, RoundDecided
from contracts.releases import Change
from services.gateway.api_keys import issue_key
from services.gateway.settings import GatewaySettings
from tests.e2e.browser import chromium, serve
from tests.e2e.support import eventually, sample, stream_messages
from tests.fakes.approvals import FakeApprovals, page_app, pending_approval

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def screenshot(page, tmp_path: Path, name: str, *, docs: bool = True) -> Path:
    """A full-page PNG in the test's folder, and in docs/ when UPDATE_SCREENSHOTS is set."""
    target = tmp_path / name
    await page.screenshot(path=str(target), full_page=True)
    if docs and os.environ.get("UPDATE_SCREENSHOTS"):
        DOCS.mkdir(exist_ok=True)
        (DOCS / name).write_bytes(target.read_bytes())
    return target


async def test_a_person_signs_in_sees_the_findings_and_approves_with_a_note(tmp_path):
    """Signed out, the page asks for a key; signed in, the pending approval shows its findings by
    file and line and the rationales; approving with a note shows the decision and the outcome.
    Nothing was requested from anywhere but the gateway."""
    settings = GatewaySettings(home=tmp_path / "home")
    key = issue_key(settings.api_keys_path, "alice", ["approvals:read", "approvals:decide"])
    approvals = FakeApprovals(pending_approval("apr-1"))
    async with serve(page_app(settings, approvals)) as base, chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.goto(f"{base}/approvals")
        await expect(page.get_by_role("heading", name="Sign in to decide on approvals")).to_be_visible()
        await page.get_by_label("Your API key or JWT").fill(key)
        await page.get_by_role("button", name="Sign in").click()

        await expect(page.get_by_role("heading", level=1)).to_have_text("Pending approvals")
        card = page.get_by_role("article").filter(has_text="payments-api 2.4.0")
        await expect(card.get_by_role("heading", name="src/config.py")).to_be_visible()
        await expect(card.get_by_text("Hard-coded credential: STRIPE_KEY.")).to_be_visible()
        await expect(card.get_by_text("line 12")).to_be_visible()
        await expect(card.get_by_text("23 h 39 min left")).to_be_visible()
        await screenshot(page, tmp_path, "approval-page.png", docs=False)  # docs/ shows the real mesh's
        assert key not in page.url

        await card.get_by_role("link", name="Review and decide payments-api 2.4.0").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("payments-api 2.4.0")
        await expect(page.get_by_text("A live-looking key is committed")).to_be_visible()
        await page.get_by_label("Note").fill("STRIPE_KEY is the test-mode fixture; ledger call lands in 2.4.1.")
        await page.get_by_role("button", name="Approve").click()

        await expect(page.get_by_role("status")).to_have_text("Your decision (approve) was recorded.")
        await expect(page.get_by_text("Outcome: approved.")).to_be_visible()
        decisions = page.get_by_role("region", name="Decisions so far")
        await expect(decisions).to_contain_text("key:alice approved")
        await expect(decisions).to_contain_text("STRIPE_KEY is the test-mode fixture; ledger call lands in 2.4.1.")
        await expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        cookies = await browser.context.cookies()
    assert approvals.calls == [
        ("apr-1", "key:alice", "approve", "STRIPE_KEY is the test-mode fixture; ledger call lands in 2.4.1.")
    ]
    assert all(url.startswith(base) for url in browser.requests), browser.requests
    (session,) = [c for c in cookies if c["name"] == "mesh_approvals"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/approvals"


async def test_on_a_phone_the_page_fits_the_screen_and_its_buttons_are_big_enough(tmp_path):
    """At 390×844 with touch: no sideways scrolling on the list or the detail, and every button
    and the state links are at least 44 px tall (WCAG's target size). docs/approval-page-phone.png."""
    settings = GatewaySettings(home=tmp_path / "home")
    key = issue_key(settings.api_keys_path, "alice", ["approvals:read", "approvals:decide"])
    approvals = FakeApprovals(pending_approval("apr-1"))
    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
    async with serve(page_app(settings, approvals)) as base, chromium(tmp_path / "profile", **phone) as browser:
        page = await browser.new_page()
        await page.goto(f"{base}/approvals/apr-1")
        await page.get_by_label("Your API key or JWT").fill(key)
        await page.get_by_role("button", name="Sign in").tap()
        await expect(page.get_by_role("heading", level=1)).to_have_text("payments-api 2.4.0")  # back where it asked
        for path in ("/approvals", "/approvals/apr-1"):
            await page.goto(f"{base}{path}")
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
            for target in await page.locator("button, nav.states a, a.button").all():
                box = await target.bounding_box()
                assert box and box["height"] >= 44, f"{path}: {await target.inner_text()!r} is {box}"
        await screenshot(page, tmp_path, "approval-page-phone.png")


# --- the whole mesh --------------------------------------------------------------------------

GPL_PIN = "@@ -1,2 +1,3 @@\n requests==2.32.3\n+pdfmagic==4.1.0  # GPL-3.0-only\n fastapi==0.115.0\n"


async def test_an_escalated_release_is_approved_in_the_browser_and_its_outcome_arrives(make_settings, launch, tmp_path):
    """The real mesh: compliance asks for a person about a GPL dependency, so the release waits
    for an approver. In the browser, alice signs in at the gateway, sees it with its finding at
    requirements.txt line 2 and compliance's rationale, approves it with a note, and sees it
    approved; the one outcome on the bus is approved, by people, with her decision and note."""
    settings = make_settings()
    key = issue_key(settings.api_keys_path, "alice", ["approvals:read", "approvals:decide"])
    mesh = await asyncio.to_thread(
        launch, settings, ["security", "compliance", "coordinator", "gateway"], approvers="default=key:alice"
    )
    gateway = next(s.url for s in mesh.services if s.name == "gateway")
    proposal = sample(
        "release_clean",
        release_id=f"rel-{uuid.uuid4().hex[:8]}",
        changes=[*sample("release_clean").changes, Change(path="requirements.txt", diff=GPL_PIN)],
    )
    note = "Legal cleared pdfmagic for internal use (LEGAL-112)."
    async with await MeshClient.connect(settings, name="page-test") as client:
        await client.propose(proposal)
        async with chromium(tmp_path / "profile", viewport={"width": 1000, "height": 900}) as browser:
            page = await browser.new_page()
            await page.goto(f"{gateway}/approvals")
            await page.get_by_label("Your API key or JWT").fill(key)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Pending approvals")

            card = page.get_by_role("article").filter(has_text=proposal.release_id)

            async def listed() -> bool:
                if await card.count():
                    return True
                await page.reload()
                return False

            assert await eventually(listed, timeout=30, interval=0.5), "the escalated release never showed"
            await expect(card.get_by_role("heading", name="requirements.txt")).to_be_visible()
            await expect(card.get_by_text("· CMP009 · compliance")).to_be_visible()
            await expect(card.get_by_text("line 2", exact=True)).to_be_visible()
            await expect(card.get_by_text("23 h 59 min left")).to_be_visible()
            await screenshot(page, tmp_path, "approval-page.png")

            await card.get_by_role("link", name=f"Review and decide {proposal.service} {proposal.version}").click()
            await page.get_by_label("Note").fill(note)
            await page.get_by_role("button", name="Approve").click()
            await expect(page.get_by_role("status")).to_have_text("Your decision (approve) was recorded.")
            await expect(page.get_by_text("Outcome: approved.")).to_be_visible()
            await expect(page.get_by_role("region", name="Decisions so far")).to_contain_text(note)
        outcome = await client.wait_for_outcome(proposal, timeout=20)
    assert all(url.startswith(gateway) for url in browser.requests), browser.requests
    assert outcome is not None and outcome.outcome == Outcome.APPROVED
    assert outcome.decided_by == "people"
    assert [(d.who, d.decision, d.note, d.via) for d in outcome.human_decisions] == [
        ("key:alice", "approve", note, "page")
    ]
    outcomes = await stream_messages(
        settings.nats_url, settings.subjects.outcomes_stream, settings.subjects.outcomes_of(proposal.release_id)
    )
    assert [RoundDecided.model_validate_json(m).outcome for m in outcomes] == [Outcome.APPROVED]  # exactly one
