#!/usr/bin/env python3
"""Parses every .swift file under ios/ with tree-sitter-swift and fails on any
syntax error, printing where. No Swift toolchain exists for this machine kind;
this is the check CI can make. uniffi's `@_documentation(visibility: private)`
attribute is not in the grammar: it is blanked (same length) before parsing,
nothing else is changed.

Usage: PYTHONPATH=.tools/py python3 scripts/swift-check.py [root]
"""
import pathlib
import re
import sys

import tree_sitter
import tree_sitter_swift

BLANK = re.compile(r"@_documentation\(visibility:\s*private\)")


def errors(node, out):
    if node.type == "ERROR" or node.is_missing:
        out.append(node)
    for child in node.children:
        errors(child, out)
    return out


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "ios")
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
    files = sorted(root.rglob("*.swift"))
    if not files:
        print(f"no Swift files under {root}", file=sys.stderr)
        return 1
    bad = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        text = BLANK.sub(lambda m: " " * len(m.group(0)), text)
        tree = parser.parse(text.encode("utf-8"))
        found = errors(tree.root_node, [])
        for node in found[:5]:
            line, col = node.start_point
            snippet = text.encode("utf-8")[node.start_byte : node.start_byte + 60]
            kind = "missing " + node.type if node.is_missing else "syntax error"
            print(f"{path}:{line + 1}:{col + 1}: {kind} near {snippet.decode('utf-8', 'replace')!r}")
        bad += bool(found)
    print(f"swift syntax: {len(files) - bad} of {len(files)} files parse cleanly")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
