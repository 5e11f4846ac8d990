"""Reference text says what the code does and why, never how the project was built.

Why: comments and docs are read as the project's reference. A line that cites
a work period ("session 5", "in this window"), an issue or pull-request number,
a person, a commit or a date as provenance, or a file outside the repository
(which a clone does not have) gives a reader nothing to check; the reason itself
belongs there instead, and measured figures carry the command that reproduces
them (docs/benchmarks.md). This greps every tracked text file and names each
offending file:line.

Scope: Markdown, TOML, shell and Makefile lines; in Python, comments and
docstrings (the unambiguous patterns are also checked in code, e.g. a help
text naming an outside file). Dates, short hashes and `#N` are looked for only
outside code spans and fenced code: there they are examples and data (a
`--since` date, an ISO timestamp, a hex colour, a run number).
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()

SUFFIXES = {".py", ".md", ".toml", ".sh", ".cfg", ".ini", ".txt", ".yml", ".yaml", ".rst"}
NAMES = {"Makefile"}

# Anywhere in a checked file, Python code included.
STRONG = {
    "work period": re.compile(r"\bsessions? \d+\b|\bsession-\d", re.I),
    "issue number": re.compile(r"\b(?:issues?|pull requests?|PR)\s*#?\d+\b", re.I),
    "file outside the repository": re.compile(
        r"SETUP-FACTS|\.\./shared\b|/work/shared|\bARCHITECTURE\.md"),
    "person": re.compile(r"\bengineers?\b|\bof mine\b|\blead's\b", re.I),
}
# In prose only (comments, docstrings, docs lines).
PROSE = {
    # ("this session" is also a database, pytest or Ray session: only numbered ones count)
    "time of work": re.compile(r"\b(?:in|of) (?:this|the same|one) window\b|\bwindows? \d", re.I),
    "clock time of work": re.compile(r"\b\d{1,2}:\d{2}(?:\s*[–-]\s*\d{1,2}:\d{2})?\s*UTC\b"),
    "commit as provenance": re.compile(r"\bcommit(?:ted)?(?: as)? `?[0-9a-f]{7,40}\b", re.I),
}
# In prose, outside code spans and fenced code.
PLAIN = {
    "date": re.compile(r"(?<![\w./-])20\d\d-[01]\d-[0-3]\d(?![\w:/-])"),
    "issue reference": re.compile(r"(?<![\w&#/\"'`=:\[])(?<!\]\()#\d{1,5}\b"),
    "commit hash": re.compile(r"(?<![\w#./@:-])(?<!git )(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,12}(?![\w-])"),
}
CODE_SPAN = re.compile(r"`[^`]*(?:`|$)")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return [f for f in out.split("\0") if f and f != SELF and Path(f).exists()
            and (Path(f).suffix in SUFFIXES or Path(f).name in NAMES)]


def python_prose(text: str) -> list[tuple[int, str]]:
    """(line, text) of every comment and every docstring line."""
    out = [(tok.start[0], tok.string) for tok in
           tokenize.generate_tokens(io.StringIO(text).readline) if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                lines = text.splitlines()[first.lineno - 1:first.end_lineno]
                out += [(first.lineno + i, line) for i, line in enumerate(lines)]
    return out


def text_prose(path: str, text: str) -> list[tuple[int, str, bool]]:
    """(line, text, in fenced code) of every line; TOML and shell: comments count as prose.
    A Markdown code span that runs on from the line before starts the line with a backtick."""
    out, fenced, in_span = [], False, False
    for n, line in enumerate(text.splitlines(), 1):
        if path.endswith(".md") and line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if path.endswith(".md") and not fenced:
            line, in_span = ("`" if in_span else "") + line, in_span ^ (line.count("`") % 2 == 1)
        if path.endswith((".toml", ".sh")) or Path(path).name in NAMES:
            i = line.find("#")
            if i < 0:
                continue
            line = line[i:]
        out.append((n, line, fenced))
    return out


def offences(path: str, root: Path = ROOT) -> list[str]:
    text = (root / path).read_text(encoding="utf-8", errors="replace")
    found: set[tuple[int, str, str]] = set()

    def check(n: int, line: str, patterns: dict, plain_ok: bool = True) -> None:
        for kind, rx in patterns.items():
            m = rx.search(line)
            if m:
                found.add((n, kind, m.group(0)))
        if plain_ok:
            bare = CODE_SPAN.sub("``", line)
            for kind, rx in PLAIN.items():
                m = rx.search(bare)
                if m:
                    found.add((n, kind, m.group(0)))

    def wrapped(lines: list[tuple[int, str]], patterns: dict) -> None:
        """A phrase broken over two lines ("session" / "7's"): matches across the join."""
        for (n, a), (m, b) in zip(lines, lines[1:], strict=False):
            if m != n + 1:
                continue
            head, tail = a.rstrip(), b.strip().lstrip("#").lstrip()
            joined = f"{head} {tail}"
            for kind, rx in patterns.items():
                for hit in rx.finditer(joined):
                    if hit.start() < len(head) < hit.end():
                        found.add((n, kind, hit.group(0)))

    if path.endswith(".py"):
        for n, line in enumerate(text.splitlines(), 1):
            check(n, line, STRONG, plain_ok=False)
        prose = sorted(python_prose(text))
        for n, line in prose:
            check(n, line, PROSE)
        wrapped(prose, {**STRONG, **PROSE})
    else:
        prose = text_prose(path, text)
        for n, line, fenced in prose:
            check(n, line, {**STRONG, **PROSE}, plain_ok=not fenced)
        wrapped([(n, line) for n, line, _ in prose], {**STRONG, **PROSE})
    return [f"{path}:{n}: {kind}: {hit!r}" for n, kind, hit in sorted(found)]


def test_no_line_says_how_the_project_was_built():
    bad = [o for f in tracked_files() for o in offences(f)]
    assert not bad, ("state the reason instead, or drop the line:\n  " + "\n  ".join(bad))


def test_the_patterns_catch_what_they_are_for(tmp_path):
    """The checks themselves: provenance is caught, look-alikes are not."""
    caught = [
        "# measured in session 5", "see issue 17", "(#17)", "fixed in PR #4",
        "# see ../shared/SETUP-FACTS.md", "per ARCHITECTURE.md", "eight engineers share",
        "run at 15:50–17:15 UTC", "measured on 2026-11-25", "before commit 217f736",
        "code c190406 ran", "in this window the medians", "as measured in session\n7's run",
    ]
    clean = [
        "aiohttp's ClientSession reuses connections", "an HTTP 404 or #include",
        "read in one database session", "this session's own Ray",
        "colour `#1f77b4` and #ffffff", "see [backends](#your-own-engines)",
        "`--since 2026-11-25|2h|7d`", "the measurement window only",
        "per time window", "a 5 s batching window", "`2026-11-25T13:00:12+00:00`",
    ]
    for line in caught:
        (tmp_path / "x.md").write_text(line + "\n")
        assert offences("x.md", tmp_path), line
    for line in clean:
        (tmp_path / "x.md").write_text(line + "\n")
        assert not offences("x.md", tmp_path), (line, offences("x.md", tmp_path))
