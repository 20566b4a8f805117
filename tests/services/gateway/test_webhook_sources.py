"""The webhook sources file: secrets written privately, read again when it changes, broken files
named and never taking the last good sources down."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from services.gateway.webhook_sources import (
    WebhookSource,
    WebhookSources,
    WebhookSourcesInvalid,
    add_source,
    read_sources,
    remove_source,
)

GOOD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "gateway" / "webhooks.json"


def write(path: Path, content: dict | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))


def test_a_standard_secret_is_whsec_and_32_random_bytes(path):
    """As the Standard Webhooks spec says: `whsec_` and base64; each source gets its own."""
    first = add_source(path, "acme", "standard")
    second = add_source(path, "globex", "standard")
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert first != second


def test_a_github_secret_is_random_hex(path):
    """GitHub takes any string; a 64-character hex secret has 256 bits."""
    secret = add_source(path, "repo", "github")
    assert len(secret) == 64
    int(secret, 16)


def test_the_file_is_private_in_a_private_folder(path):
    """Mode 0600 in a 0700 folder, whatever the umask, and no temporary file left beside it."""
    old = os.umask(0o000)
    try:
        add_source(path, "acme", "standard")
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert [p.name for p in path.parent.iterdir()] == ["webhooks.json"]


def test_added_sources_are_read_back_with_their_scheme_secret_and_event(path):
    """What add_source writes is what the gateway reads, in the documented format."""
    secret = add_source(path, "acme", "standard")
    add_source(path, "repo", "github", "release.proposed")
    sources = WebhookSources(path)
    assert sources.get("acme") == WebhookSource("acme", "standard", secret, "release.proposed")
    assert sources.get("repo").scheme == "github"
    assert set(json.loads(path.read_text())["sources"]) == {"acme", "repo"}


def test_a_secret_never_shows_in_a_sources_repr(path):
    """A source that ends up in a log line or a traceback does not carry its secret there."""
    secret = add_source(path, "acme", "standard")
    assert secret not in repr(WebhookSources(path).get("acme"))


def test_a_sender_issued_secret_can_be_given(path):
    """Senders that issue their own secret: it is stored as given."""
    assert add_source(path, "svix", "standard", secret=GOOD_SECRET) == GOOD_SECRET
    assert WebhookSources(path).get("svix").secret == GOOD_SECRET


def test_a_standard_secret_that_is_not_whsec_base64_is_refused_without_quoting_it(path):
    """A secret the signing code could not use is caught when added, and the error hides it."""
    for bad in ("whsec_a", "whsec_!!!!"):
        with pytest.raises(WebhookSourcesInvalid, match="not a Standard Webhooks secret") as caught:
            add_source(path, "acme", "standard", secret=bad)
        assert bad not in str(caught.value)
    assert not path.exists()


def test_a_taken_name_is_refused_unless_replaced_which_rotates_the_secret(path):
    """Adding over an existing source is a mistake to report; `replace=True` issues a new secret."""
    first = add_source(path, "acme", "standard")
    with pytest.raises(WebhookSourcesInvalid, match="exists"):
        add_source(path, "acme", "github")
    assert WebhookSources(path).get("acme").secret == first
    second = add_source(path, "acme", "standard", replace=True)
    assert second != first
    assert WebhookSources(path).get("acme").secret == second


@pytest.mark.parametrize("name", ["", "has space", "dot.ted", "a/b", "x" * 65])
def test_a_name_that_cannot_be_a_url_segment_is_refused(path, name):
    """Names go into URLs, caller ids and KV keys: letters, digits, '-' and '_' only."""
    with pytest.raises(WebhookSourcesInvalid, match="letters, digits"):
        add_source(path, name, "standard")


def test_an_event_type_nobody_may_publish_is_refused(path):
    """A source may only turn into an event the gateway publishes; the error lists those."""
    with pytest.raises(WebhookSourcesInvalid, match=r"'round.decided' is not an event.*release.proposed"):
        add_source(path, "acme", "standard", "round.decided")


def test_removing_a_source_says_whether_it_was_there(path):
    """True the first time, False after; the others stay."""
    add_source(path, "acme", "standard")
    add_source(path, "repo", "github")
    assert remove_source(path, "acme") is True
    assert remove_source(path, "acme") is False
    assert set(read_sources(path)) == {"repo"}


def test_a_missing_file_means_no_sources(path):
    """No file is no error: the gateway simply takes no webhooks."""
    assert WebhookSources(path).get("acme") is None
    assert remove_source(path, "acme") is False


def test_sources_added_or_removed_after_start_are_seen_without_a_restart(path):
    """The file is read again when it changes: a new source is found, a removed one is gone."""
    sources = WebhookSources(path)
    assert sources.get("acme") is None
    add_source(path, "acme", "standard")
    assert sources.get("acme") is not None
    add_source(path, "repo", "github")
    remove_source(path, "acme")
    assert sources.get("acme") is None
    assert sources.get("repo") is not None


def test_a_rotated_secret_is_seen_without_a_restart(path):
    """Replacing a source's secret takes effect for the running gateway at its next request."""
    add_source(path, "acme", "standard")
    sources = WebhookSources(path)
    rotated = add_source(path, "acme", "standard", replace=True)
    assert sources.get("acme").secret == rotated


def test_deleting_the_file_shuts_every_source_out(path):
    """A file that disappears leaves no sources, not the last ones read."""
    add_source(path, "acme", "standard")
    sources = WebhookSources(path)
    path.unlink()
    assert sources.get("acme") is None


def test_a_file_broken_while_running_keeps_the_last_good_sources_and_says_why(path):
    """A bad edit neither takes webhooks down nor goes unnoticed: the last good sources stay and
    one warning names the problem; the fixed file is taken at once."""
    secret = add_source(path, "acme", "standard")
    sources = WebhookSources(path)
    write(path, {"sources": {"acme": {"scheme": "gitlab", "secret": secret}}})
    with capture_logs() as logs:
        assert sources.get("acme").secret == secret
        assert sources.get("acme").secret == secret
    assert [entry["log_level"] for entry in logs] == ["warning"]
    assert "sources.acme.scheme" in logs[0]["problem"]
    assert secret not in logs[0]["problem"]
    write(path, {"sources": {"globex": {"scheme": "github", "secret": "s3"}}})
    assert sources.get("acme") is None
    assert sources.get("globex").scheme == "github"


@pytest.mark.parametrize(
    "content, named",
    [
        ("{not json", "Invalid JSON"),
        ({"sources": {"acme": {"scheme": "gitlab", "secret": "x"}}}, "sources.acme.scheme"),
        ({"sources": {"acme": {"scheme": "github"}}}, "sources.acme.secret: Field required"),
        ({"sources": {"acme": {"scheme": "github", "secret": ""}}}, "sources.acme.secret"),
        ({"sources": {"acme": {"scheme": "github", "secrets": "x", "secret": "y"}}}, "sources.acme.secrets"),
        ({"sources": {"acme": {"scheme": "github", "secret": "x", "event_type": "nope"}}}, "'nope' is not an event"),
        ({"sources": {"acme": {"scheme": "standard", "secret": "whsec_a"}}}, "'acme': its secret is not"),
        ({"sources": {"a b": {"scheme": "github", "secret": "x"}}}, "'a b' must be"),
        ({"webhooks": {}}, "webhooks: Extra inputs"),
    ],
    ids=["json", "scheme", "no-secret", "empty-secret", "typo", "event", "standard-secret", "name", "top-level"],
)
def test_a_broken_file_at_start_is_an_error_naming_the_problem(path, content, named):
    """With no good sources to fall back on, a broken file fails the gateway's start with the file
    and the field in the message."""
    write(path, content)
    with pytest.raises(WebhookSourcesInvalid) as caught:
        WebhookSources(path)
    assert str(path) in str(caught.value)
    assert named in str(caught.value)


def test_a_broken_file_is_never_overwritten(path):
    """add_source and remove_source refuse to rewrite a file they cannot read, so no source is lost."""
    write(path, "{not json")
    with pytest.raises(WebhookSourcesInvalid):
        add_source(path, "acme", "standard")
    with pytest.raises(WebhookSourcesInvalid):
        remove_source(path, "acme")
    assert path.read_text() == "{not json"
