#!/usr/bin/env python3
"""The shape checks of tests/98-shape.bats (issue 18), one per subcommand.

  shape.py imports PROGRAM OBJECT...   no import circle among the objects
  shape.py sizes FILE.c...             no function over 60 lines, median <= 15
  shape.py complexity FILE.c...        complexity over 15 only in a marked
                                       flat switch

Each prints exactly what is wrong, one finding a line, and exits 1 if
anything is; it exits 0 silently otherwise.  Programs run without a shell.
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile

MAX_LINES = 60          # issue 18: no function over 60 lines
MEDIAN_LINES = 15       # issue 18: median function length
MAX_COMPLEXITY = 15     # issue 18: pmccabe's modified complexity (column 1)
# The marker a function with more branches carries, in its body or in the
# comment block just above it: "/* flat switch: why a switch over a table
# reads best here */".  The function must also hold a switch.
MARKER = re.compile(r"/\*\s*flat switch:")


def run(argv):
    return subprocess.run(argv, check=True, capture_output=True,
                          text=True).stdout


def symbols(obj):
    """The global symbols obj defines and the ones it takes from others."""
    defined, undefined = set(), set()
    for line in run(["nm", "--portability", obj]).splitlines():
        name, kind = line.split()[:2]
        if kind == "U":
            undefined.add(name)
        elif kind.isupper() or kind in "uvw":
            defined.add(name)
    return defined, undefined


def import_graph(objs):
    """{a: {b: [symbols a takes from b]}} over the file names of objs."""
    names = [o.rsplit("/", 1)[-1] for o in objs]
    syms = {n: symbols(o) for n, o in zip(names, objs)}
    owner = {}
    for n in names:
        for s in syms[n][0]:
            owner.setdefault(s, n)
    graph = {n: {} for n in names}
    for n in names:
        for s in sorted(syms[n][1]):
            b = owner.get(s)
            if b is not None and b != n:
                graph[n].setdefault(b, []).append(s)
    return graph


def circles(graph):
    """The strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def one_cycle(graph, comp):
    """A shortest way round the circle from its first file, as a list."""
    start, members = comp[0], set(comp)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for w in sorted(graph[path[-1]]):
            if w == start:
                return path + [start]
            if w in members and w not in seen:
                seen.add(w)
                paths.append(path + [w])
    return comp


def check_imports(program, objs):
    graph = import_graph(objs)
    bad = 0
    for comp in circles(graph):
        bad = 1
        cycle = one_cycle(graph, comp)
        print("%s: import circle %s; every arrow among %s:"
              % (program, " -> ".join(cycle), " ".join(comp)))
        for a in comp:
            for b in sorted(graph[a]):
                if b in comp:
                    print("  %s -> %s: %s" % (a, b, " ".join(graph[a][b])))
    return bad


DIRECTIVE = re.compile(r"\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b")


def conditionals(text):
    """Each line of text, the directive it is (or None), and the open
    #if's as [line index of the #if, branch: 0, then 1 after an #else]."""
    stack = []
    for i, ln in enumerate(text):
        d = DIRECTIVE.match(ln)
        kw = d.group(1) if d is not None else None
        if kw is not None and kw.startswith("if"):
            stack.append([i, 0])
        elif kw in ("elif", "else") and stack:
            stack[-1][1] += 1
        elif kw == "endif" and stack:
            stack.pop()
        yield ln, kw, stack


def branches(text):
    """{line index of an #if: how many branches it has}."""
    count = {}
    for _, _, stack in conditionals(text):
        for i, b in stack:
            count[i] = max(count.get(i, 0), b + 1)
    return count


def sides(text):
    """The text once per branch of its conditionals, the other branches
    and the directives blanked (so lines keep their numbers): variant k
    keeps branch k of every #if, or its last.  pmccabe reads only one
    side of an #if ... #else (conn.c's NO_TLS stubs hid its TLS half)."""
    count = branches(text)
    for k in range(max(count.values(), default=1)):
        yield "\n".join(
            ln if kw is None and
            all(b == min(k, count[i] - 1) for i, b in stack) else ""
            for ln, kw, stack in conditionals(text))


def pmccabe_rows(path):
    """pmccabe's rows for the file at path, each side of its #if's."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read().split("\n")
    if not branches(text):
        return [(path, ln) for ln in run(["pmccabe", path]).splitlines()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        side = os.path.join(tmp, os.path.basename(path))
        for variant in sides(text):
            with open(side, "w", encoding="utf-8") as f:
                f.write(variant)
            rows += [(path, ln) for ln in run(["pmccabe", side]).splitlines()]
    return rows


def functions(files):
    """pmccabe's rows: (complexity, first line, lines, file, name, line of
    the name); the first line is the return type's.  A function seen in
    several sides of an #if counts once, as its largest."""
    rows = {}
    for path, line in (r for f in files for r in pmccabe_rows(f)):
        cols = line.split("\t")
        where = re.match(r"(.*)\((\d+)\): (.*)", cols[5])
        row = (int(cols[0]), int(cols[3]), int(cols[4]), path,
               where.group(3), int(where.group(2)))
        key = (path, row[4], row[5])
        rows[key] = max(rows.get(key, row), row, key=lambda r: (r[2], r[0]))
    return list(rows.values())


def check_sizes(files):
    rows = functions(files)
    bad = 0
    for _, _, lines, path, name, at in sorted(rows, key=lambda r: -r[2]):
        if lines > MAX_LINES:
            bad = 1
            print("%s:%d: %s is %d lines (at most %d)"
                  % (path, at, name, lines, MAX_LINES))
    median = statistics.median(r[2] for r in rows)
    if median > MEDIAN_LINES:
        bad = 1
        print("median function length %g lines over %d functions "
              "(at most %d)" % (median, len(rows), MEDIAN_LINES))
    return bad


def marked(text, first, lines):
    """The function at lines first..first+lines-1 (1-based) holds a switch
    and carries the marker in its body or the comment block above it."""
    start = first - 1
    while start > 0 and text[start - 1].strip() and \
            not text[start - 1].startswith("}"):
        start -= 1
    above = text[start:first - 1]
    body = text[first - 1:first - 1 + lines]
    has_switch = any(re.search(r"\bswitch\s*\(", ln) for ln in body)
    return has_switch and any(MARKER.search(ln) for ln in above + body)


def check_complexity(files):
    texts = {}
    bad = 0
    for cc, first, lines, path, name, at in functions(files):
        if cc <= MAX_COMPLEXITY:
            continue
        if path not in texts:
            with open(path, encoding="utf-8", errors="replace") as f:
                texts[path] = f.read().split("\n")
        if not marked(texts[path], first, lines):
            bad = 1
            print("%s:%d: %s has complexity %d (at most %d, or a switch "
                  "marked /* flat switch: why */)"
                  % (path, at, name, cc, MAX_COMPLEXITY))
    return bad


def main(argv):
    if len(argv) >= 3 and argv[0] == "imports":
        return check_imports(argv[1], argv[2:])
    if len(argv) >= 2 and argv[0] == "sizes":
        return check_sizes(argv[1:])
    if len(argv) >= 2 and argv[0] == "complexity":
        return check_complexity(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
