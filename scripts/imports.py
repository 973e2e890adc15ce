#!/usr/bin/env python3
"""Checks the direction of imports inside every crate of the workspace.

It fails (exit 1) when
  * two modules of one crate import each other, directly or in a loop, or
  * a file under app/src/server imports an app module other than the bottom
    ones (api, candles, error, shared_json, time_format): the server side is the engine
    room, and the pages, the browser code and the HTTP edge sit above it.

How it reads the code. Each crate's module tree is found by following
`mod name;` from src/lib.rs and src/main.rs (each is its own root). In every
file, comments and string literals are blanked out, then every path that
starts with `crate::`, `super::`, `self::` or the name of a child module is
read, the paths inside `use` trees (`use a::{b, c::d}`) included. A path is
resolved to the longest module prefix that is a file; a name that module
re-exports with `pub use` is followed to where it is defined, so importing
`crate::server::Exchange` counts as importing the file that defines it.
Paths inside an inline `mod name { ... }` (a file's own unit tests) resolve
relative to it, and a file referring to itself is not an import. Each
resolved path is one edge from the file's module to the target's; a loop is
a strongly connected component of more than one module.

Usage: scripts/imports.py [workspace root]
"""

from __future__ import annotations

import os
import re
import sys

CRATES = ["orderbook", "accounts", "store", "app", "frontend"]
SERVER_MAY_IMPORT = {"api", "candles", "error", "shared_json", "time_format"}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def blank_comments_and_strings(text: str) -> str:
    """The text with comments, strings and char literals replaced by spaces,
    so positions and line numbers stay the same."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c == "r" and re.match(r'r(#*)"', text[i:i + 40]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            blank(i, end)
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\.[^']*|[^'\\])'", text[i:i + 12])
            if m:
                blank(i, i + m.end())
                i += m.end()
            else:
                i += 1  # a lifetime
        else:
            i += 1
    return "".join(out)


def matching_brace(text: str, open_at: int) -> int:
    depth = 0
    for k in range(open_at, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(text)


def expand_use_tree(tree: str) -> list[list[str]]:
    """`a::{b, c::{d, self}}` -> [[a, b], [a, c, d], [a, c]]."""
    tree = re.sub(r"\s+as\s+" + IDENT, "", tree)
    tree = re.sub(r"\s+", "", tree)
    results: list[list[str]] = []

    def walk(s: str, prefix: list[str]) -> None:
        parts, depth, start = [], 0, 0
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:k])
                start = k + 1
        parts.append(s[start:])
        for part in parts:
            if not part:
                continue
            brace = part.find("{")
            if brace >= 0:
                head = [p for p in part[:brace].split("::") if p]
                walk(part[brace + 1:part.rfind("}")], prefix + head)
            else:
                segs = [p for p in part.split("::") if p]
                if segs and segs[-1] == "self":
                    segs = segs[:-1]
                results.append(prefix + segs)

    walk(tree, [])
    return results


class Crate:
    def __init__(self, root: str, name: str):
        self.name = name
        self.src = os.path.join(root, name, "src")
        # per root file: module path (tuple) -> file
        self.trees: dict[str, dict[tuple[str, ...], str]] = {}
        for root_file in ("lib.rs", "main.rs"):
            path = os.path.join(self.src, root_file)
            if os.path.exists(path):
                tree: dict[tuple[str, ...], str] = {}
                self._collect((), path, tree)
                self.trees[root_file] = tree

    def _collect(self, module: tuple[str, ...], path: str, tree: dict) -> None:
        tree[module] = path
        text = blank_comments_and_strings(open(path, encoding="utf-8").read())
        directory = os.path.dirname(path)
        if os.path.basename(path) not in ("lib.rs", "main.rs", "mod.rs"):
            directory = os.path.join(directory, os.path.basename(path)[:-3])
        for m in re.finditer(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", text, re.M):
            # A `#[path]` module (a file shared from outside src) has no file
            # at the usual place, and is left out.
            name = m.group(1)
            for candidate in (os.path.join(directory, name + ".rs"), os.path.join(directory, name, "mod.rs")):
                if os.path.exists(candidate):
                    self._collect(module + (name,), candidate, tree)
                    break


def references(text: str, module: tuple[str, ...], children: set[str]):
    """Yields (line, absolute path) for every crate path in a blanked file."""
    inline = []  # (start, end, name)
    for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{", text):
        inline.append((m.end() - 1, matching_brace(text, m.end() - 1), m.group(1)))

    def base_at(pos: int) -> tuple[str, ...]:
        inner = tuple(name for (a, b, name) in sorted(inline) if a < pos < b)
        return module + inner

    def absolute(segs: list[str], pos: int):
        base = base_at(pos)
        if not segs:
            return None
        if segs[0] == "crate":
            return tuple(segs[1:])
        if segs[0] in ("super", "self"):
            current = list(base)
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    if not current:
                        return None
                    current.pop()
                segs = segs[1:]
            return tuple(current) + tuple(segs)
        if segs[0] in children and base == module:
            return module + tuple(segs)
        return None

    line_of = lambda pos: text.count("\n", 0, pos) + 1
    used = []
    for m in re.finditer(r"\buse\s+([^;]*);", text):
        used.append((m.start(), m.end()))
        for segs in expand_use_tree(m.group(1)):
            target = absolute(segs, m.start())
            if target is not None:
                yield line_of(m.start()), target
    heads = ["crate", "super", "self"] + [re.escape(c) for c in sorted(children)]
    head = r"\b(?:" + "|".join(heads) + r")"
    for m in re.finditer(head + r"(?:\s*::\s*" + IDENT + r")+", text):
        if any(a <= m.start() < b for a, b in used):
            continue
        if m.start() > 0 and text[m.start() - 1] == ":":
            continue  # the tail of a longer path such as other_crate::self_like
        segs = re.sub(r"\s+", "", m.group(0)).split("::")
        target = absolute(segs, m.start())
        if target is not None:
            yield line_of(m.start()), target


def check_tree(crate: Crate, root_file: str, tree: dict) -> list[str]:
    blanked = {module: blank_comments_and_strings(open(path, encoding="utf-8").read()) for module, path in tree.items()}
    children = {
        module: {other[-1] for other in tree if len(other) == len(module) + 1 and other[:-1] == module}
        for module in tree
    }
    # `pub use` re-exports: module -> name -> absolute path
    reexports: dict[tuple[str, ...], dict[str, tuple[str, ...]]] = {}
    for module, text in blanked.items():
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]*);", text):
            for segs in expand_use_tree(m.group(1)):
                target = None
                if segs and segs[0] in children[module]:
                    target = module + tuple(segs)
                elif segs and segs[0] == "self":
                    target = module + tuple(segs[1:])
                elif segs and segs[0] == "super" and module:
                    target = module[:-1] + tuple(segs[1:])
                elif segs and segs[0] == "crate":
                    target = tuple(segs[1:])
                if target and len(target) > len(module):
                    reexports.setdefault(module, {})[target[-1]] = target

    def resolve(path: tuple[str, ...], depth: int = 0) -> tuple[str, ...] | None:
        for k in range(len(path), -1, -1):
            prefix = path[:k]
            if prefix in tree:
                rest = path[k:]
                if rest and depth < 8 and rest[0] in reexports.get(prefix, {}):
                    again = resolve(reexports[prefix][rest[0]] + rest[1:], depth + 1)
                    if again is not None:
                        return again
                return prefix
        return None

    edges: dict[tuple[str, ...], dict[tuple[str, ...], int]] = {m: {} for m in tree}
    for module, text in blanked.items():
        for line, path in references(text, module, children[module]):
            target = resolve(path)
            if target is None or target == module:
                continue
            edges[module].setdefault(target, line)

    problems: list[str] = []
    name = lambda m: "::".join(m) if m else f"{crate.name} root ({root_file})"
    rel = lambda m: os.path.relpath(tree[m])

    # Tarjan's strongly connected components.
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            sccs.append(component)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    for component in sccs:
        if len(component) > 1:
            members = set(component)
            lines = [
                f"    {rel(a)}:{line} imports {name(b)}"
                for a in sorted(component)
                for b, line in sorted(edges[a].items())
                if b in members
            ]
            problems.append(f"{crate.name}: modules import each other in a loop: "
                            + ", ".join(sorted(name(m) for m in component)) + "\n" + "\n".join(lines))

    if crate.name == "app" and root_file == "lib.rs":
        for module in sorted(edges):
            if module[:1] != ("server",):
                continue
            for target, line in sorted(edges[module].items()):
                if target[:1] == ("server",) or (target and target[0] in SERVER_MAY_IMPORT):
                    continue
                problems.append(f"app: {rel(module)}:{line} imports {name(target)}, above the server "
                                f"(server files may import only server::*, "
                                + ", ".join(sorted(SERVER_MAY_IMPORT)) + ")")
    return problems


def main() -> int:
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    problems: list[str] = []
    modules = 0
    for name in CRATES:
        crate = Crate(root, name)
        for root_file, tree in crate.trees.items():
            modules += len(tree)
            problems += check_tree(crate, root_file, tree)
    for problem in problems:
        print(problem)
    if problems:
        print(f"imports: {len(problems)} problem(s)")
        return 1
    print(f"imports: {modules} modules, no loops, nothing under app/src/server imports upwards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
