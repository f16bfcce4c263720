#!/usr/bin/env python3
"""Checks that .tf files are in terraform fmt's canonical layout, without terraform.

scripts/check-infra.sh runs it where no terraform binary exists. It checks the
rules of terraform fmt that our files exercise, the way terraform computes them:

  * indentation: two spaces per open bracket level, where a line that opens
    several brackets at once adds one level (as `f(x, {` does) and the line
    that closes them returns to its opening line's level;
  * alignment: in a run of consecutive lines that each assign a whole value
    (`name = value`, brackets balanced), the `=` signs line up one space after
    the longest name; a blank line, a comment line, a block or a multi-line
    value ends the run;
  * one space after an assignment's `=`, and one before it where the value
    spans lines; no tabs; no trailing whitespace after code (terraform fmt
    leaves comments as written); the file ends with exactly one newline.

It does not check spacing inside expressions. Usage:
    check_fmt.py DIR_OR_FILE...
Prints each problem as file:line: what, then a summary; exits 1 on any problem.
"""

import pathlib
import sys

OPENERS = "([{"
CLOSERS = ")]}"


class Line:
    """One source line, read as terraform's formatter reads it."""

    def __init__(self, number, text):
        self.number = number
        self.text = text
        self.code = text.strip()
        self.net = 0  # brackets opened minus closed on this line
        self.assign_col = None  # column of the first plain `=`, outside strings
        self.net_after_assign = None  # brackets opened minus closed from that `=` on
        self.verbatim = False  # inside a heredoc or block comment: left as written
        self.ends_in_comment = False  # a `#` or `//` comment runs to the end of the line


def scan(text):
    """Splits text into Lines, tracking strings, interpolations, comments and heredocs."""
    lines = [Line(i + 1, t) for i, t in enumerate(text.split("\n"))]
    heredoc = None  # the closing marker while inside a heredoc
    block_comment = False
    for line in lines:
        if heredoc is not None:
            line.verbatim = True
            if line.code == heredoc:
                heredoc = None
            continue
        if block_comment:
            line.verbatim = True
            if "*/" in line.text:
                block_comment = False
            continue
        t = line.text
        i = 0
        # Stack of contexts inside this line: '"' for a string, '${' for an interpolation.
        stack = []
        bracket_log = []  # (column, change) for every bracket outside strings
        while i < len(t):
            c = t[i]
            in_string = bool(stack) and stack[-1] == '"'
            if in_string:
                if c == "\\":
                    i += 2
                    continue
                if t.startswith("${", i) or t.startswith("%{", i):
                    stack.append("${")
                    bracket_log.append((i, 1))
                    i += 2
                    continue
                if c == '"':
                    stack.pop()
                i += 1
                continue
            if c == '"':
                stack.append('"')
            elif c == "#" or t.startswith("//", i):
                line.ends_in_comment = True
                break
            elif t.startswith("/*", i):
                end = t.find("*/", i + 2)
                if end < 0:
                    block_comment = True
                    break
                i = end + 2
                continue
            elif t.startswith("<<", i):
                marker = t[i + 2 :].lstrip("-").strip()
                if marker.isidentifier():
                    heredoc = marker
                    break
            elif c in OPENERS:
                bracket_log.append((i, 1))
            elif c in CLOSERS:
                if stack and stack[-1] == "${" and c == "}":
                    stack.pop()
                bracket_log.append((i, -1))
            elif c == "=" and line.assign_col is None and not stack:
                prev = t[i - 1] if i else ""
                nxt = t[i + 1] if i + 1 < len(t) else ""
                if prev not in "=!<>" and nxt not in "=>":
                    line.assign_col = i
            i += 1
        line.net = sum(change for _, change in bracket_log)
        if line.assign_col is not None:
            line.net_after_assign = sum(ch for col, ch in bracket_log if col > line.assign_col)
    return lines, heredoc is not None or block_comment


def check_text(name, text):
    problems = []

    def problem(line, what):
        problems.append(f"{name}:{line.number}: {what}")

    lines, unterminated = scan(text)
    if unterminated:
        problems.append(f"{name}: a heredoc or block comment never ends")
    if not text.endswith("\n") or text.endswith("\n\n"):
        problems.append(f"{name}: must end with exactly one newline")
    if lines and lines[-1].text == "":
        lines = lines[:-1]

    indents = []  # per open line: how many brackets it left open
    for line in lines:
        if line.verbatim:
            continue
        if "\t" in line.text:
            problem(line, "a tab (indent with spaces)")
        if line.text != line.text.rstrip() and not line.ends_in_comment:
            problem(line, "trailing whitespace")
        if not line.code:
            continue
        expected = 2 * len(indents)
        if line.net < 0:
            closed = -line.net
            while closed > 0 and indents:
                if closed >= indents[-1]:
                    closed -= indents.pop()
                else:
                    indents[-1] -= closed
                    closed = 0
            expected = 2 * len(indents)
        elif line.net > 0:
            indents.append(line.net)
        actual = len(line.text) - len(line.text.lstrip(" "))
        if actual != expected:
            problem(line, f"indented {actual} spaces, terraform fmt indents {expected}")

    # Runs of whole-value assignments, `=` aligned one space after the longest name.
    run = []

    def close_run():
        if not run:
            return
        width = max(len(l.text[: l.assign_col].rstrip()) for l in run)
        for l in run:
            if l.assign_col != width + 1:
                problem(l, f"`=` at column {l.assign_col + 1}; in this run terraform fmt puts it at {width + 2}")
        run.clear()

    for line in lines:
        if line.assign_col is None or line.verbatim:
            close_run()
            continue
        after = line.text[line.assign_col + 1 :]
        if after.strip() and not (after.startswith(" ") and not after.startswith("  ")):
            problem(line, "one space after `=`")
        if line.net_after_assign == 0:
            run.append(line)
            continue
        close_run()
        # A multi-line value's `=` is aligned with nothing: one space before it.
        before = line.text[: line.assign_col]
        if not (before.endswith(" ") and not before.endswith("  ")):
            problem(line, "one space before `=` (a multi-line value is aligned with nothing)")
    close_run()
    return problems


def main(argv):
    if not argv:
        print(__doc__.strip().splitlines()[0])
        print("usage: check_fmt.py DIR_OR_FILE...")
        return 2
    files = []
    for arg in argv:
        path = pathlib.Path(arg)
        if path.is_dir():
            files += sorted(f for f in path.rglob("*.tf") if ".terraform" not in f.parts)
        else:
            files.append(path)
    problems = []
    for f in files:
        problems += check_text(str(f), f.read_text())
    for p in problems:
        print(f"check_fmt: {p}")
    if not files:
        print("check_fmt: FAILED: no .tf files found")
        return 1
    if problems:
        print(f"check_fmt: FAILED: {len(problems)} problem(s) in {len(files)} files")
        return 1
    print(f"check_fmt: ok: {len(files)} files in canonical layout")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
