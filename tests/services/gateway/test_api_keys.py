"""services/gateway/api_keys.py: keys issued once, stored hashed and private, revoked for good,
and a store that follows the file as it changes."""

from __future__ import annotations

import json
import threading

import pytest
from structlog.testing import capture_logs

from services.gateway.api_keys import (
    DEFAULT_SCOPES,
    ApiKeyStore,
    KeyFileError,
    KeyNameTaken,
    issue_key,
    list_keys,
    revoke_key,
    split_key,
)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "gateway" / "api-keys.json"


def test_an_issued_key_is_stored_hashed_in_a_private_file(path):
    """The plaintext is returned once and appears nowhere on disk; the file is 0600 in a 0700 folder."""
    key = issue_key(path, "ci")

    key_id, secret = split_key(key)
    text = path.read_text()
    assert key.startswith("mk_") and len(secret) >= 43  # 32 random bytes, base64url
    assert secret not in text and key_id in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    (record,) = json.loads(text)["keys"]
    assert record["name"] == "ci" and record["scopes"] == list(DEFAULT_SCOPES)
    assert ApiKeyStore(path).find(key).name == "ci"


def test_a_live_name_is_not_issued_twice_unless_replaced(path):
    """A second key for a name with a live key is refused; `replace=True` rotates it, and the old
    key stops matching."""
    first = issue_key(path, "ci")
    with pytest.raises(KeyNameTaken, match="ci"):
        issue_key(path, "ci")
    second = issue_key(path, "ci", ["releases:read"], replace=True)

    store = ApiKeyStore(path)
    assert store.find(first) is None
    assert store.find(second).scopes == ["releases:read"]
    assert [key.name for key in list_keys(path)] == ["ci"]


def test_revoking_keeps_the_record_and_frees_the_name(path):
    """A revoked key still matches (so the caller can be told it was revoked), is listed with its
    revocation time, and the name may be issued a new key without `replace`."""
    old = issue_key(path, "ci")
    assert revoke_key(path, "ci") is True
    assert revoke_key(path, "ci") is False  # nothing live left to revoke
    assert revoke_key(path, "nobody") is False

    assert ApiKeyStore(path).find(old).revoked
    (listed,) = list_keys(path)
    assert listed.revoked_at is not None
    new = issue_key(path, "ci")
    assert not ApiKeyStore(path).find(new).revoked


def test_listing_never_shows_a_hash(path):
    """`list_keys` gives name, id, scopes and dates: no field carries the secret's hash."""
    issue_key(path, "ci")
    (listed,) = list_keys(path)
    assert set(listed.model_dump()) == {"name", "key_id", "scopes", "created_at", "revoked_at"}


@pytest.mark.parametrize(
    ("name", "scopes", "complaint"),
    [
        ("c i", ["releases:read"], "client name"),
        ("", ["releases:read"], "client name"),
        ("ci", [], "at least one scope"),
        ("ci", ["releases read"], "scope 'releases read'"),
        ("ci", ["events:release.?:publish"], "'*' as the only wildcard"),
    ],
    ids=["space-in-name", "empty-name", "no-scopes", "space-in-scope", "question-mark"],
)
def test_bad_names_and_scopes_are_refused_before_anything_is_written(path, name, scopes, complaint):
    """A malformed name or scope raises ValueError naming it, and leaves no file behind."""
    with pytest.raises(ValueError, match=complaint):
        issue_key(path, name, scopes)
    assert not path.exists()


@pytest.mark.parametrize(
    "token",
    ["mk_", "mk_abc_secret", "mk_0123456789abcdef", "mk_0123456789abcdef_", "xmk_0123456789abcdef_s", "Bearer"],
)
def test_malformed_keys_are_not_split(token):
    """Only `mk_<16 hex>_<secret>` is a key; anything else is not looked up at all."""
    assert split_key(token) is None


def test_the_store_follows_the_file_and_a_missing_file_means_no_keys(path):
    """One store sees keys added and revoked after it was made; with no file it matches nothing."""
    store = ApiKeyStore(path)
    key = "mk_0123456789abcdef_" + "x" * 43
    assert store.find(key) is None

    added = issue_key(path, "ci")
    assert store.find(added).name == "ci"
    revoke_key(path, "ci")
    assert store.find(added).revoked
    path.unlink()
    assert store.find(added) is None


def test_a_broken_file_accepts_no_key_and_is_reported_once(path):
    """A hand-edit that breaks the file fails closed (a revoked key must not survive a typo), is
    logged once rather than per request, and the CLI functions refuse it by name."""
    key = issue_key(path, "ci")
    store = ApiKeyStore(path)
    assert store.find(key) is not None
    path.write_text('{"keys": [{"name": "ci"}]}')

    with capture_logs() as logs:
        assert store.find(key) is None
        assert store.find(key) is None
    refused = [entry for entry in logs if entry["event"] == "gateway.api_keys_refused"]
    assert len(refused) == 1 and "key_id" in refused[0]["why"]
    with pytest.raises(KeyFileError, match="not an API keys file"):
        list_keys(path)


def test_concurrent_issues_all_land(path):
    """Keys issued at the same moment (two `keys add`, or `mesh up` and an operator) are all kept:
    each read-change-write holds the file's lock."""
    names = [f"client-{n}" for n in range(8)]
    threads = [threading.Thread(target=issue_key, args=(path, name)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [key.name for key in list_keys(path)] == sorted(names)
