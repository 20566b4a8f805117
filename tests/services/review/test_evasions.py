"""The ways issue 18 found past the offline rules, and the clean changes they used to block.

Each evasion is written here afresh (not copied from the eval corpus): the rules must catch the
trick, not one release that used it. Both reviewers judge as the mesh does (policy `all`).
"""

import base64

import pytest

from contracts.releases import Change, ReleaseProposed
from contracts.reviews import Verdict
from services.review.offline import OfflineReviewer
from services.review.rules import load_rules

AWS_KEY = "AKIAQ4TR7WXZ2LMN5PV6"
GITHUB = "ghp_" + "Lm3Np5Qr7St9Uv1Wx3Yz5Ab7Cd9Ef1Gh3Ij5"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dcZk8vQ2mR"


@pytest.fixture(scope="module")
def reviewers() -> list[OfflineReviewer]:
    return [OfflineReviewer(load_rules(name), name=name) for name in ("security", "compliance")]


def judge(reviewers, *changes: tuple[str, str], description: str = "Routine change.", labels=("backend",)):
    """The mesh's verdict (the strictest of both reviewers) and every finding's rule id."""
    release = ReleaseProposed(
        release_id="rel-evasion",
        service="ledger",
        version="1.2.3",
        title="Routine change",
        description=description,
        changes=[Change(path=path, diff=diff) for path, diff in changes],
        labels=list(labels),
    )
    assessments = [reviewer.review(release) for reviewer in reviewers]
    rank = {Verdict.APPROVE: 0, Verdict.NEEDS_HUMAN: 1, Verdict.REJECT: 2}
    verdict = max((a.verdict for a in assessments), key=rank.__getitem__)
    return verdict, {f.rule for a in assessments for f in a.findings}


def added(*lines: str, start: int = 7) -> str:
    return f"@@ -{start},1 +{start},{len(lines) + 1} @@\n context = 1\n" + "".join(f"+{line}\n" for line in lines)


EVASIONS = {
    "key split with +": ("billing/aws.py", added(f'KEY_ID = "{AWS_KEY[:6]}" + "{AWS_KEY[6:13]}" + "{AWS_KEY[13:]}"')),
    "key split with ''.join": (
        "billing/pay.py",
        added(f'KEY = "".join(["{STRIPE[:10]}", "{STRIPE[10:22]}", "{STRIPE[22:]}"])'),
    ),
    "key split over two lines": ("billing/gh.ts", added(f'const token = "{GITHUB[:12]}" +', f'  "{GITHUB[12:]}";')),
    "key in base64": (
        "billing/b64.py",
        added(f'TOKEN = base64.b64decode("{base64.b64encode(GITHUB.encode()).decode()}").decode()'),
    ),
    "key in \\x escapes": ("billing/hex.py", added('KEY_ID = "' + "".join(f"\\x{ord(c):02x}" for c in AWS_KEY) + '"')),
    "key in \\u escapes": ("web/key.js", added('const id = "' + "".join(f"\\u{ord(c):04x}" for c in AWS_KEY) + '";')),
    "key in docs/": ("docs/deploy.md", added(f"export GITHUB_TOKEN={GITHUB}")),
    "key in examples/": ("examples/charge.py", added(f'stripe.api_key = "{STRIPE}"')),
    "key in tests/fixtures/": ("tests/fixtures/config.json", added(f'  "aws_access_key_id": "{AWS_KEY}",')),
    "unquoted YAML password": ("deploy/prod.yaml", added("  db_password: Zq8!vLm2Rt5x")),
    "unquoted .env password": (".env", added("POSTGRES_PASSWORD=Zq8vLm2Rt5x9")),
    "key after U+2028": ("billing/cfg.py", added(f'REGION = "eu-west-1"\u2028KEY_ID = "{AWS_KEY}"')),
    "key after \\r": ("billing/cfg.py", added(f'REGION = "eu-west-1"\rKEY_ID = "{AWS_KEY}"')),
    "key after a form feed": ("billing/cfg.go", added(f'var region = "eu-west-1"\x0cvar keyID = "{AWS_KEY}"')),
    "diff without + markers": ("billing/raw.py", f'import boto3\n\nKEY_ID = "{AWS_KEY}"\n'),
    "private key without + markers": (
        "tls/server.key",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n",
    ),
}


@pytest.mark.parametrize("name", list(EVASIONS))
def test_a_disguised_secret_is_still_rejected(reviewers, name):
    """Split, encoded, escaped, hidden behind odd line breaks, unmarked, or in docs, examples and
    fixtures: a live key is rejected all the same."""
    verdict, rules = judge(reviewers, EVASIONS[name])
    assert verdict is Verdict.REJECT, rules


def test_a_secret_in_the_description_is_rejected(reviewers):
    """The title and description are read for secrets too."""
    verdict, rules = judge(reviewers, ("src/a.py", added("x = 1")), description=f"Test with {STRIPE} please.")
    assert verdict is Verdict.REJECT and "SEC003" in rules


def test_a_secret_in_a_file_path_is_rejected(reviewers):
    """A key used as a file name is a leaked key."""
    verdict, rules = judge(reviewers, (f"ci/keys/{GITHUB}.txt", added("bot")))
    assert verdict is Verdict.REJECT and "SEC004" in rules


def test_an_auth_decorator_moved_into_markdown_is_a_removal(reviewers):
    """Removing `@login_required` and adding the same line to a Markdown file protects nothing."""
    removed = "@@ -10,3 +10,2 @@\n @app.post('/payouts')\n-@login_required\n def payout():\n"
    verdict, rules = judge(reviewers, ("app/payouts.py", removed), ("docs/api.md", added("@login_required")))
    assert verdict is Verdict.REJECT and "SEC016" in rules


def test_an_auth_decorator_moved_to_another_module_is_not(reviewers):
    """The same decorator moved with its view into another Python module is a move."""
    removed = "@@ -10,3 +10,1 @@\n-@app.post('/payouts')\n-@login_required\n-def payout():\n"
    moved = added("@app.post('/payouts')", "@login_required", "def payout():")
    assert judge(reviewers, ("app/payouts.py", removed), ("app/views/payouts.py", moved)) == (Verdict.APPROVE, set())


@pytest.mark.parametrize(
    "lines",
    [
        ("cur.execute(\"SELECT id FROM users WHERE email = '%s'\"", "            % email)"),
        ('query = "SELECT id FROM users WHERE name = \'" +', '    name + "\'"'),
        ("rows = await db.query(`", "  SELECT * FROM orders", "  WHERE id = ${req.params.id}", "`);"),
    ],
)
def test_sql_injection_spread_over_lines_is_found(reviewers, lines):
    """A query whose formatting sits on the next line is read as one statement."""
    verdict, rules = judge(reviewers, ("app/repo.py", added(*lines)))
    assert verdict is Verdict.REJECT and "SEC017" in rules


@pytest.mark.parametrize("label", ["PCI-DSS", "pci_dss", "PCI DSS", "scope:pci", "GDPR", "Security"])
def test_regulated_labels_are_recognised_however_spelled(reviewers, label):
    """A regulated label needs its sign-off whatever its spelling or namespace."""
    changelog = ("CHANGELOG.md", added("- Tweak."))
    verdict, rules = judge(reviewers, ("src/a.py", added("x = 1")), changelog, labels=[label])
    assert verdict is Verdict.REJECT and "CMP011" in rules


CLEAN = {
    "chmod 1777 on a temp directory": ("docker/entrypoint.sh", added("mkdir -p /tmp/app && chmod 1777 /tmp/app")),
    "a count of emails in a log line": ("mail/send.py", added('print(f"sent {len(emails)} messages")')),
    "argon2 replacing md5": ("auth/passwords.py", added("    return argon2.hash(password)  # replaces md5")),
    "a vault: reference": ("deploy/values.yaml", added("  DB_PASSWORD: vault:secret/data/ledger/prod#db_password")),
    "yaml.load with SafeLoader on its second line": (
        "app/config.py",
        added("    return yaml.load(handle,", "                     Loader=yaml.SafeLoader)"),
    ),
    "a LICENSE year bump": (
        "LICENSE",
        "@@ -1,3 +1,3 @@\n MIT License\n-Copyright (c) 2025 Acme\n+Copyright (c) 2026 Acme\n",
    ),
}


@pytest.mark.parametrize("name", list(CLEAN))
def test_clean_changes_once_blocked_are_approved(reviewers, name):
    """The clean changes issue 18 saw blocked or escalated raise nothing at all."""
    assert judge(reviewers, CLEAN[name]) == (Verdict.APPROVE, set())
