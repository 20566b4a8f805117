"""The approval page over ASGI, without a broker: the real authenticator and keys file, a fake
approvals core (tests/fakes/approvals.py). Signing in and out, the cookie's attributes, CSRF,
scopes, escaping, deciding and refused decisions. In a real browser: tests/e2e/test_approval_page.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from contracts.approvals import ApprovalState
from contracts.outcomes import HumanDecision
from services.gateway.api_keys import issue_key, revoke_key
from services.gateway.page.session import COOKIE, SIGN_IN_COOKIE, csrf_token
from services.gateway.settings import GatewaySettings
from tests.fakes.approvals import FakeApprovals, page_app, pending_approval

NONCE = re.compile(r'name="nonce" value="([^"]+)"')


def finding_time():
    return pending_approval().requested_at


@dataclass
class Site:
    client: httpx.AsyncClient
    approvals: FakeApprovals
    settings: GatewaySettings
    keys: dict[str, str]

    async def sign_in(self, name: str = "alice") -> str:
        """Sign in with `name`'s key as a browser does; returns the CSRF token of its pages."""
        form = await self.client.get("/approvals/sign-in")
        answer = await self.client.post(
            "/approvals/sign-in", data={"nonce": NONCE.search(form.text)[1], "credential": self.keys[name]}
        )
        assert answer.status_code == 303, answer.text
        return csrf_token(self.keys[name])

    async def decide(self, csrf: str | None, decision: str = "approve", note: str = "", approval: str = "apr-1"):
        data = {"decision": decision, "note": note} | ({"csrf": csrf} if csrf is not None else {})
        return await self.client.post(f"/approvals/{approval}/decision", data=data)


def make_keys(settings: GatewaySettings) -> dict[str, str]:
    path = settings.api_keys_path
    return {
        "alice": issue_key(path, "alice", ["approvals:read", "approvals:decide"]),
        "bob": issue_key(path, "bob", ["approvals:*"]),
        "mallory": issue_key(path, "mallory", ["approvals:read", "approvals:decide"]),  # no approver
        "reader": issue_key(path, "reader", ["approvals:read"]),
        "ci": issue_key(path, "ci", ["releases:read"]),
    }


@pytest.fixture
async def site(tmp_path) -> AsyncIterator[Site]:
    settings = GatewaySettings(home=tmp_path)
    keys = make_keys(settings)
    approvals = FakeApprovals(pending_approval("apr-1"), pending_approval("apr-done", state=ApprovalState.APPROVED))
    transport = httpx.ASGITransport(app=page_app(settings, approvals))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield Site(client, approvals, settings, keys)


# --- signing in and out ----------------------------------------------------------------------


async def test_a_browser_that_is_not_signed_in_is_sent_to_the_sign_in_form(site):
    """Without the cookie, the list and a detail redirect (303) to the form, which remembers the
    page asked for; the form itself loads."""
    listing = await site.client.get("/approvals")
    assert listing.status_code == 303 and listing.headers["location"] == "/approvals/sign-in"
    detail = await site.client.get("/approvals/apr-1")
    assert detail.headers["location"] == "/approvals/sign-in?next=%2Fapprovals%2Fapr-1"
    form = await site.client.get(detail.headers["location"])
    assert form.status_code == 200
    assert '<label for="credential">' in form.text and 'value="/approvals/apr-1"' in form.text


async def test_signing_in_keeps_the_key_in_an_httponly_strict_cookie_scoped_to_the_page(site):
    """A good key: 303 to the list, the key in an HttpOnly, SameSite=Strict cookie on /approvals,
    not Secure over plain http, and never in the URL it is sent to."""
    form = await site.client.get("/approvals/sign-in")
    answer = await site.client.post(
        "/approvals/sign-in", data={"nonce": NONCE.search(form.text)[1], "credential": site.keys["alice"]}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/approvals"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}="))
    assert cookie.startswith(f"{COOKIE}={site.keys['alice']};")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/approvals"} <= attributes
    assert "secure" not in attributes
    assert site.keys["alice"] not in answer.headers["location"]
    listing = await site.client.get("/approvals")
    assert listing.status_code == 200 and "Signed in as <strong>key:alice</strong>" in listing.text


async def test_over_https_the_cookie_is_secure_too(tmp_path):
    """Served over https, the session cookie carries Secure."""
    settings = GatewaySettings(home=tmp_path)
    key = issue_key(settings.api_keys_path, "alice", ["approvals:read"])
    transport = httpx.ASGITransport(app=page_app(settings, FakeApprovals()))
    async with httpx.AsyncClient(transport=transport, base_url="https://gateway.test") as client:
        form = await client.get("/approvals/sign-in")
        answer = await client.post("/approvals/sign-in", data={"nonce": NONCE.search(form.text)[1], "credential": key})
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}="))
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


@pytest.mark.parametrize(
    ("credential", "says"),
    [
        ("mk_0123456789abcdef_not-the-secret", "The API key is not valid"),
        ("hello world; x=1", "is not an API key"),
        ("", "is not an API key"),
    ],
)
async def test_a_bad_key_is_refused_on_the_form_and_sets_no_cookie(site, credential, says):
    """An unknown key, or something that is no credential at all: the form again (400) with the
    reason, and no session cookie."""
    form = await site.client.get("/approvals/sign-in")
    answer = await site.client.post(
        "/approvals/sign-in", data={"nonce": NONCE.search(form.text)[1], "credential": credential}
    )
    assert answer.status_code == 400
    assert says in answer.text and 'role="alert"' in answer.text
    assert not any(c.startswith(f"{COOKIE}=") for c in answer.headers.get_list("set-cookie"))
    assert (await site.client.get("/approvals")).status_code == 303


async def test_a_pasted_bearer_prefix_is_taken_off(site):
    """`Bearer mk_…`, copied from a curl line, signs in as the key alone."""
    form = await site.client.get("/approvals/sign-in")
    answer = await site.client.post(
        "/approvals/sign-in", data={"nonce": NONCE.search(form.text)[1], "credential": f"  Bearer {site.keys['bob']} "}
    )
    assert answer.status_code == 303
    assert site.client.cookies.get(COOKIE, path="/approvals") == site.keys["bob"]


async def test_sign_in_without_the_forms_nonce_is_refused(site):
    """A sign-in posted from elsewhere (no nonce, or another one) is refused (403) and sets no
    session: no other site can sign a browser in with its own key."""
    for data in ({"credential": site.keys["alice"]}, {"credential": site.keys["alice"], "nonce": "x" * 43}):
        answer = await site.client.post("/approvals/sign-in", data=data)
        assert answer.status_code == 403
        assert not any(c.startswith(f"{COOKIE}=") for c in answer.headers.get_list("set-cookie"))


async def test_sign_in_goes_back_to_the_page_asked_for_and_nowhere_else(site):
    """`next` may name a page of the site; anything else sends the browser to the list."""
    for wanted, lands in [("/approvals/apr-1", "/approvals/apr-1"), ("https://evil.test/", "/approvals")]:
        site.client.cookies.clear()
        form = await site.client.get("/approvals/sign-in", params={"next": wanted})
        data = {"nonce": NONCE.search(form.text)[1], "credential": site.keys["alice"], "next": wanted}
        answer = await site.client.post("/approvals/sign-in", data=data)
        assert answer.headers["location"] == lands


async def test_signing_out_forgets_the_key_and_needs_the_pages_token(site):
    """Sign-out without the token is refused (403); with it, the cookie is cleared and the list
    asks for a sign-in again."""
    csrf = await site.sign_in("alice")
    assert (await site.client.post("/approvals/sign-out", data={"csrf": ""})).status_code == 403
    assert (await site.client.get("/approvals")).status_code == 200
    answer = await site.client.post("/approvals/sign-out", data={"csrf": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/approvals/sign-in"
    assert (await site.client.get("/approvals")).status_code == 303


async def test_a_revoked_key_is_signed_out_at_its_next_request(site):
    """The door checks the cookie's key on every request: once revoked, the page redirects to the
    form and clears the cookie."""
    await site.sign_in("alice")
    revoke_key(site.settings.api_keys_path, "alice")
    answer = await site.client.get("/approvals")
    assert answer.status_code == 303 and answer.headers["location"] == "/approvals/sign-in"
    assert any(c.startswith(f"{COOKIE}=") and "max-age=0" in c.lower() for c in answer.headers.get_list("set-cookie"))


async def test_a_key_without_the_read_scope_gets_a_page_naming_it(site):
    """Authenticated but without `approvals:read`: 403, and the page says which scope is missing."""
    await site.sign_in("ci")
    answer = await site.client.get("/approvals")
    assert answer.status_code == 403
    assert "key:ci lacks the scope &#39;approvals:read&#39;" in answer.text


# --- reading --------------------------------------------------------------------------------


async def test_the_list_shows_each_pending_approval_with_findings_by_file_rationales_and_time_left(site):
    """Only pending ones by default; findings under their file, by line; the tally, the
    rationales, the time left."""
    await site.sign_in("alice")
    page = (await site.client.get("/approvals")).text
    assert "payments-api 2.4.0" in page and 'href="/approvals/apr-1"' in page
    assert "apr-done" not in page
    assert "1 critical, 1 high, 1 medium, 1 info" in page
    assert page.index('class="path">src/config.py') < page.index('class="path">src/refunds.py')
    refunds = page[page.index('class="path">src/refunds.py') :]
    assert refunds.index("line 31") < refunds.index("line 88")
    assert "(not tied to a file)" in page and "whole file" in page
    assert "A live-looking key is committed" in page
    assert re.search(r"23 h 3\d min left", page)
    decided = (await site.client.get("/approvals", params={"state": "approved"})).text
    assert 'href="/approvals/apr-done"' in decided and 'href="/approvals/apr-1"' not in decided


async def test_whatever_a_release_or_reviewer_says_is_shown_as_text(site):
    """A finding, a title, a path, a rationale or a note holding markup is escaped, never run."""
    evil = "<script>alert(1)</script>"
    finding = pending_approval().findings[0]
    site.approvals.approvals["apr-1"] = pending_approval(
        "apr-1",
        title=f"t {evil}",
        findings=[finding.model_copy(update={"message": f"m {evil}", "path": '"><img src=x onerror=alert(2)>'})],
        rationales={"security": f"r {evil}"},
        decisions=[HumanDecision(who="key:bob", when=finding_time(), decision="approve", note=f"n {evil}")],
        reason=f"why {evil}",
        needed=2,
    )
    await site.sign_in("alice")
    for path in ("/approvals", "/approvals/apr-1"):
        page = (await site.client.get(path)).text
        assert "<script>" not in page and "<img" not in page
        assert "m &lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "r &lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "n &lt;script&gt;" in page and "t &lt;script&gt;" in page and "why &lt;script&gt;" in page


async def test_every_page_loads_nothing_from_the_network_and_forbids_it(site):
    """No src or href leaves the site, no script at all, and the CSP allows only inline styles;
    framing is refused."""
    await site.sign_in("alice")
    for path in ("/approvals", "/approvals/apr-1", "/approvals/sign-in"):
        answer = await site.client.get(path)
        assert re.search(r'(src|href|action)="(https?:)?//', answer.text) is None
        assert "<script" not in answer.text and '<link rel="stylesheet"' not in answer.text
        assert answer.headers["content-security-policy"].startswith("default-src 'none'; style-src 'unsafe-inline'")
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"
        assert '<meta name="viewport"' in answer.text and '<html lang="en">' in answer.text


async def test_an_unknown_approval_is_a_404_page(site):
    await site.sign_in("alice")
    answer = await site.client.get("/approvals/apr-nope")
    assert answer.status_code == 404 and "No approval &#39;apr-nope&#39; is known" in answer.text


async def test_a_gateway_without_the_approvals_core_says_so(tmp_path):
    """No `app.state.approvals`: a 503 page, not a crash."""
    settings = GatewaySettings(home=tmp_path)
    keys = make_keys(settings)
    transport = httpx.ASGITransport(app=page_app(settings, None))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        site = Site(client, FakeApprovals(), settings, keys)
        await site.sign_in("alice")
        answer = await client.get("/approvals")
    assert answer.status_code == 503 and "does not serve approvals" in answer.text


# --- deciding -------------------------------------------------------------------------------


async def test_approving_with_a_note_records_it_and_shows_the_decision(site):
    """The form's approve: the core is called with the caller and the note, the browser is sent
    back (303) to the approval, which shows it approved, by whom, with the note."""
    csrf = await site.sign_in("alice")
    answer = await site.decide(csrf, "approve", "Key is a test fixture; fine.")
    assert answer.status_code == 303 and answer.headers["location"] == "/approvals/apr-1?decided=approve"
    assert site.approvals.calls == [("apr-1", "key:alice", "approve", "Key is a test fixture; fine.")]
    page = (await site.client.get(answer.headers["location"])).text
    assert "Your decision (approve) was recorded." in page
    assert "<strong>key:alice</strong> approved" in page and "Key is a test fixture; fine." in page
    assert '<dd class="state">approved</dd>' in page and "Outcome: approved." in page
    assert 'name="decision"' not in page  # nothing left to decide


@pytest.mark.parametrize(
    "token",
    [None, "", "0" * 64, "forged-by-someone-else"],
    ids=["missing", "empty", "wrong", "forged"],
)
async def test_a_decision_without_the_pages_csrf_token_is_refused(site, token):
    """The session cookie alone decides nothing: without the token of a page rendered for this
    credential, 403 and the core is never called."""
    await site.sign_in("alice")
    answer = await site.decide(token)
    assert answer.status_code == 403
    assert "security token" in answer.text
    assert site.approvals.calls == []


async def test_another_credentials_token_does_not_pass(site):
    """A token is bound to its credential: bob's token with alice's session is refused."""
    await site.sign_in("alice")
    answer = await site.decide(csrf_token(site.keys["bob"]))
    assert answer.status_code == 403 and site.approvals.calls == []


async def test_nothing_unauthenticated_can_decide(site):
    """No cookie (or a forged one): sent to sign in, the core never called."""
    answer = await site.decide(csrf_token("mk_0123456789abcdef_guess"))
    assert answer.status_code == 303 and answer.headers["location"].startswith("/approvals/sign-in")
    site.client.cookies.set(COOKIE, "mk_0123456789abcdef_guess", path="/approvals")
    answer = await site.decide(csrf_token("mk_0123456789abcdef_guess"))
    assert answer.status_code == 303 and site.approvals.calls == []


async def test_a_reader_may_look_but_not_decide(site):
    """With `approvals:read` only: the detail says why there is no form, and a posted decision is
    refused (403) naming `approvals:decide`."""
    csrf = await site.sign_in("reader")
    page = (await site.client.get("/approvals/apr-1")).text
    assert "lacks the scope <code>approvals:decide</code>" in page and 'name="decision"' not in page
    answer = await site.decide(csrf)
    assert answer.status_code == 403 and "approvals:decide" in answer.text
    assert site.approvals.calls == []


async def test_a_refused_decision_shows_the_cores_reason(site):
    """The core refuses (mallory is no approver): the approval again, with the status and the
    reason, and the note kept in the form."""
    csrf = await site.sign_in("mallory")
    answer = await site.decide(csrf, "reject", "Looks wrong to me")
    assert answer.status_code == 403
    assert "Your decision was refused: key:mallory is not an approver of this release" in answer.text
    assert ">Looks wrong to me</textarea>" in answer.text
    assert "<strong>key:mallory</strong> tried to reject" in answer.text  # the refusal is on the record
    assert site.approvals.approvals["apr-1"].state == "pending"


async def test_a_decision_after_the_outcome_is_refused_with_its_reason(site):
    csrf = await site.sign_in("alice")
    answer = await site.decide(csrf, approval="apr-done")
    assert answer.status_code == 409 and "the release was approved already" in answer.text


async def test_two_person_rule_the_first_approval_waits_for_a_second_person(site):
    """With two approvers needed, alice's approval leaves it pending and her form gone; bob's
    approves it."""
    site.approvals.approvals["apr-1"] = pending_approval("apr-1", needed=2)
    csrf = await site.sign_in("alice")
    await site.decide(csrf, "approve", "first")
    page = (await site.client.get("/approvals/apr-1")).text
    assert "2 approvers (two-person rule)" in page and "You have decided on this release already" in page
    csrf = await site.sign_in("bob")
    await site.decide(csrf, "approve", "second")
    assert site.approvals.approvals["apr-1"].state == "approved"


async def test_a_decision_must_be_approve_or_reject_and_the_note_short(site):
    csrf = await site.sign_in("alice")
    assert (await site.decide(csrf, "maybe")).status_code == 400
    too_long = await site.decide(csrf, "approve", "x" * 2001)
    assert too_long.status_code == 400 and "keep it to 2000" in too_long.text
    assert site.approvals.calls == []


async def test_the_sign_in_nonce_cookie_is_httponly_and_strict_too(site):
    form = await site.client.get("/approvals/sign-in")
    cookie = next(c for c in form.headers.get_list("set-cookie") if c.startswith(f"{SIGN_IN_COOKIE}="))
    assert {"httponly", "samesite=strict", "path=/approvals"} <= {p.strip().lower() for p in cookie.split(";")}


async def test_a_decision_the_mesh_has_not_confirmed_yet_is_not_called_recorded(site):
    """No verdict from the coordinator in time: 202, the approval again, and a notice that the
    decision was sent but not confirmed (never "recorded")."""
    site.approvals.silent = True
    csrf = await site.sign_in("alice")
    answer = await site.decide(csrf, "approve", "ok")
    assert answer.status_code == 202
    assert "was sent, but the mesh has not confirmed it yet" in answer.text and "recorded" not in answer.text
