"""Reading unified diffs: added and removed lines, with new-file line numbers."""

from services.review.diffs import blank_strings, is_comment, parse_diff

GIT_DIFF = """\
diff --git a/src/refunds.py b/src/refunds.py
index 3b18e51..a9c2f04 100644
--- a/src/refunds.py
+++ b/src/refunds.py
@@ -10,6 +10,8 @@ from payments import ledger
 
 def refund(order_id: str) -> Refund:
     order = orders.get(order_id)
+    if order is None:
+        raise OrderNotFound(order_id)
     amount = order.total
-    ledger.credit(order.customer, amount)
+    ledger.credit(order.customer, amount, reason="refund")
     return Refund(order_id, amount)
@@ -40,3 +42,4 @@ def list_refunds():
     return [r for r in store]
+
+# end of module
\\ No newline at end of file
"""


def test_added_lines_carry_new_file_line_numbers_across_hunks():
    """Each added line gets its line number in the new file, hunk headers included."""
    parsed = parse_diff(GIT_DIFF)
    assert [(line.line, line.text) for line in parsed.added] == [
        (13, "    if order is None:"),
        (14, "        raise OrderNotFound(order_id)"),
        (16, '    ledger.credit(order.customer, amount, reason="refund")'),
        (43, ""),
        (44, "# end of module"),
    ]


def test_removed_lines_know_their_old_line_and_where_they_were_in_the_new_file():
    """A removed line keeps its old-file number and points at the new-file line now in its place."""
    (removed,) = parse_diff(GIT_DIFF).removed
    assert removed.text == "    ledger.credit(order.customer, amount)"
    assert (removed.old_line, removed.line) == (14, 16)


def test_file_headers_and_no_newline_markers_are_not_content():
    """`+++`/`---` file headers, `index` and `\\ No newline` lines never count as changes."""
    parsed = parse_diff(GIT_DIFF)
    texts = [line.text for line in parsed.added + parsed.removed]
    assert not any(text.startswith(("++ b/", "-- a/", " No newline")) for text in texts)
    assert len(parsed.added) == 5 and len(parsed.removed) == 1


def test_a_diff_without_hunk_headers_counts_from_one():
    """Bare `+` lines (as producers often send) are numbered 1, 2, ... with context counted."""
    parsed = parse_diff("+def refund(order_id):\n+    ...\n context\n+    return None\n")
    assert [line.line for line in parsed.added] == [1, 2, 4]


def test_headers_without_hunks_are_skipped_before_counting():
    """`---`/`+++` headers followed by bare `+` lines still start counting at line 1."""
    parsed = parse_diff("--- a/app.py\n+++ b/app.py\n+import os\n+import sys\n")
    assert [(line.line, line.text) for line in parsed.added] == [(1, "import os"), (2, "import sys")]


def test_content_that_starts_with_plus_plus_inside_a_hunk_is_an_added_line():
    """Inside a hunk, `+++counter;` is the added C line `++counter;`, not a file header."""
    parsed = parse_diff("@@ -1,1 +1,2 @@\n int counter = 0;\n+++counter;\n")
    assert [(line.line, line.text) for line in parsed.added] == [(2, "++counter;")]


def test_a_second_file_in_one_diff_restarts_header_handling():
    """After `diff --git`, the next file's headers are skipped and its hunk numbers apply."""
    diff = GIT_DIFF + "diff --git a/b.py b/b.py\n--- a/b.py\n+++ b/b.py\n@@ -0,0 +1 @@\n+x = 1\n"
    assert parse_diff(diff).added[-1].line == 1


def test_empty_diff_has_no_lines():
    """An empty diff (a change with no text) parses to nothing, without error."""
    parsed = parse_diff("")
    assert parsed.added == [] and parsed.removed == [] and parsed.lines == []


def test_comment_detection_covers_common_languages_but_not_code():
    """#, //, /*, *, `-- `, ; lines are comments; `#define`, `#!` and `--flag` are not."""
    for comment in ["# note", "  // note", "/* note", " * note", "-- note", "; note", "<!-- note -->"]:
        assert is_comment(comment), comment
    for code in ["#define PASSWORD x", "#!/bin/sh", "  --insecure \\", "x = 1  # trailing", "*args"]:
        assert not is_comment(code), code


def test_blank_strings_keeps_interpolations_and_keys_but_drops_prose():
    """Prose in strings disappears; `{x}`, `${x}`, `%(x)s` and key-like strings stay."""
    assert blank_strings('log.info("sending email to %s", uid)') == 'log.info("", uid)'
    assert blank_strings('log.info(f"to {user.email}")') == 'log.info(f"{user.email}")'
    assert blank_strings("console.log(`dob ${user.dob}`)") == "console.log(`${user.dob}`)"
    assert blank_strings('log.info("%(email)s sent", data)') == 'log.info("%(email)", data)'
    assert blank_strings('log.info("event", extra={"email": e})') == 'log.info("event", extra={"email": e})'


def test_odd_line_breaks_split_a_line_but_keep_its_marker_and_number():
    """Text after U+2028, a bare CR or a form feed is read as its own line, still added, at the same line."""
    parsed = parse_diff("@@ -1,1 +1,2 @@\n a\n+x = 1\u2028key = 2\rz\x0cw\n")
    assert [(line.line, line.text) for line in parsed.added] == [(2, "x = 1"), (2, "key = 2"), (2, "z"), (2, "w")]


def test_crlf_diffs_read_like_lf_diffs():
    """A Windows line ending is no odd break: `\\r\\n` ends a line and adds nothing."""
    parsed = parse_diff("@@ -1,1 +1,2 @@\r\n a\r\n+b\r\n")
    assert [(line.line, line.text) for line in parsed.added] == [(2, "b")]


def test_a_diff_without_hunk_headers_is_also_read_whole_as_new_content():
    """Without a hunk header, lines with no `+` (a pasted file, a `-----BEGIN` line) are also
    read as the new file's content, in full."""
    parsed = parse_diff("-----BEGIN PRIVATE KEY-----\n  indented\nplain\n+added\n")
    assert [line.text for line in parsed.unmarked] == ["-----BEGIN PRIVATE KEY-----", "  indented", "plain"]
    assert [line.text for line in parsed.added] == ["added"]


def test_a_line_without_a_marker_inside_a_hunk_counts_as_added():
    """A malformed hunk line is new content, not skipped (fail closed)."""
    parsed = parse_diff("@@ -1,1 +1,2 @@\n a\nsneaky = 1\n")
    assert [(line.line, line.text) for line in parsed.added] == [(2, "sneaky = 1")]


def test_context_lines_are_kept_for_rules_that_read_around_a_change():
    """Context lines carry their new-file numbers (rules with `near` read them)."""
    parsed = parse_diff(GIT_DIFF)
    assert (12, "    order = orders.get(order_id)") in [(line.line, line.text) for line in parsed.context]
