"""Statements: lines joined while a call, a string or an expression runs on; code without comments."""

import pytest

from services.review.diffs import parse_diff
from services.review.statements import MAX_LINES, comment_style, read_code, statements


def read(path: str, *lines: str):
    return statements(parse_diff("".join(f"+{line}\n" for line in lines)).added, path)


def test_an_open_bracket_joins_the_next_lines_and_keeps_their_line_numbers():
    """A call over three lines is one statement; each part remembers its new-file line."""
    (call,) = read("app.py", "x = yaml.load(", "    f,", "    Loader=SafeLoader)")
    assert call.code == "x = yaml.load(     f,     Loader=SafeLoader)"
    assert call.lines == (1, 2, 3)
    assert call.line_at(call.code.index("Loader"), code=True) == 3


@pytest.mark.parametrize(
    "lines",
    [
        ('q = "SELECT 1 FROM t WHERE a = %s"', "    % a"),  # the next line starts with an operator
        ('q = "SELECT 1 FROM t WHERE a = " +', "    a"),  # the line ends with one
        ("q = `", "  SELECT 1", "`"),  # a template literal runs on
        ('q = """', "  SELECT 1", '"""'),  # a triple-quoted string runs on
        ("q = a \\", "    + b"),  # a backslash continues the line
    ],
)
def test_continuations_join_lines(lines):
    """Operators at either end of a line, and strings that stay open, continue a statement."""
    assert len(read("app.py", *lines)) == 1


def test_braces_do_not_join_a_function_body():
    """A body is several statements: `{` opens a block, not an expression."""
    assert len(read("main.go", "func handler(w http.ResponseWriter) {", '\tlog.Printf("hi")', "\treturn", "}")) == 4


def test_configuration_files_are_read_line_by_line():
    """`PASSWORD=` in .env is an empty value, not the start of the next line's."""
    assert len(read(".env", "DB_PASSWORD=", "DB_USER=app")) == 2
    assert len(read("values.yaml", "token: a +", "other: b")) == 2


def test_statements_are_cut_after_a_bounded_number_of_lines():
    """An unclosed bracket cannot swallow the rest of a file."""
    parts = read("app.py", "call(", *(f"    arg{n}," for n in range(40)))
    assert max(len(part.lines) for part in parts) <= MAX_LINES


@pytest.mark.parametrize(
    ("path", "line", "code"),
    [
        ("a.py", "h = argon2.hash(pw)  # replaces md5", "h = argon2.hash(pw)"),
        ("a.py", 'color = "#fff"  # white', 'color = "#fff"'),
        ("a.js", 'const u = "http://x"; // note', 'const u = "http://x";'),
        ("a.sql", "SELECT 1 -- why", "SELECT 1"),
        ("a.yaml", "url: vault:secret/x#key  # ref", "url: vault:secret/x#key"),
        ("a.py", "total = count // 2", "total = count // 2"),  # `//` is no comment in Python
        ("curl.sh", "curl --insecure https://x", "curl --insecure https://x"),
    ],
)
def test_trailing_comments_are_cut_in_the_files_own_syntax(path, line, code):
    """Each file type loses only its own kind of trailing comment, never text inside strings."""
    assert read_code(line, None, comment_style(path))[0] == code


def test_whole_comment_lines_have_no_code_but_keep_their_text():
    """Secrets count in comments (text); code rules skip them (code)."""
    (comment,) = read("a.py", "# key = AKIA...")
    assert (comment.code, comment.text) == ("", "# key = AKIA...")
