#!/usr/bin/env python3
"""Checks that imports point one way: no circle between the crate's top-level modules, and none
between the files of one folder. Reads `use` lines and inline `crate::`/`super::` paths of the
non-test code under src/ (test modules, tests.rs files and comments are left out). Prints the module graph
and every circle; exits 1 when there is one.

Usage: scripts/check_imports.py [--graph]
"""
import os, re, sys

ROOT = os.environ.get("SRC_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
PATH = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")
USE_GROUP = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)*)::\{([^}]*)\}", re.S)


def module_of(relative):
    """`pipeline/steps.rs` -> ['pipeline', 'steps']; `pipeline/mod.rs` -> ['pipeline']."""
    parts = relative[:-3].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def non_test_text(path):
    """The file's code without its test module and comments (doc links are not imports)."""
    text = open(path).read()
    cut = text.find("#[cfg(test)]")
    text = text if cut < 0 else text[:cut]
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def references(module, text):
    """Absolute module paths (lists) that `text`, written in `module`, refers to."""
    found = []
    def resolve(root, rest):
        parts = [p for p in rest.split("::") if p]
        base = [] if root == "crate" else module[:-1]
        return base + parts
    for root, rest, group in USE_GROUP.findall(text):
        for item in group.split(","):
            item = item.strip().split(" as ")[0].strip()
            if item and item != "self":
                found.append(resolve(root, rest + "::" + item.split("::")[0]))
            elif item:
                found.append(resolve(root, rest))
    for root, rest in PATH.findall(USE_GROUP.sub("", text)):
        found.append(resolve(root, rest))
    return found


REEXPORT = re.compile(r"pub use (?:self::)?([a-z_][a-z0-9_]*)::(?:\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))\s*;", re.S)


def reexports(module, text):
    """`pub use child::{Name, …}` in `module`: (module + Name) -> module + child, so that an import
    through a folder's re-export counts as an import of the file that defines the name."""
    found = {}
    for child, group, single in REEXPORT.findall(text):
        for name in (group.split(",") if group else [single]):
            name = name.strip().split(" as ")[-1].strip()
            if name:
                found[tuple(module) + (name,)] = tuple(module) + (child,)
    return found


def files():
    for directory, _, names in os.walk(ROOT):
        for name in names:
            relative = os.path.relpath(os.path.join(directory, name), ROOT)
            if name.endswith(".rs") and not name.endswith("tests.rs") and "/tests/" not in "/" + relative:
                yield relative


def circles(graph):
    found, state, stack = [], {}, []
    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2
    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def main():
    modules = {tuple(module_of(f)): f for f in files()}
    known = set(modules)
    renamed = {}
    for module, relative in modules.items():
        renamed.update(reexports(list(module), non_test_text(os.path.join(ROOT, relative))))
    top, folders = {}, {}
    for module, relative in modules.items():
        if not module:
            continue
        for target in references(list(module), non_test_text(os.path.join(ROOT, relative))):
            # A name re-exported by a folder stands for the file that defines it; otherwise the
            # longest known module that the referenced path starts with.
            for length in range(len(target), 1, -1):
                if tuple(target[:length]) in renamed:
                    target = list(renamed[tuple(target[:length])])
                    break
            while target and tuple(target) not in known:
                target = target[:-1]
            if not target:
                continue
            if target[0] != module[0]:
                top.setdefault(module[0], set()).add(target[0])
            elif (len(module) > 1 and len(target) >= len(module)
                  and list(target[:len(module) - 1]) == list(module[:-1])
                  and target[len(module) - 1] != module[-1]):
                # A sibling file, or a file inside a sibling folder: an edge between siblings.
                sibling = target[len(module) - 1]
                folders.setdefault("/".join(module[:-1]), {}).setdefault(module[-1], set()).add(sibling)
    problems = [("crate", c) for c in circles(top)]
    for folder, graph in folders.items():
        problems += [(folder, c) for c in circles(graph)]
    if "--graph" in sys.argv:
        for name in sorted(top):
            print(f"{name} -> {', '.join(sorted(top[name]))}")
    for where, circle in problems:
        print(f"import circle in {where}: {' -> '.join(circle)}")
    print(f"{len(top)} modules, {sum(len(v) for v in top.values())} module imports, "
          f"{len(problems)} circle(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
