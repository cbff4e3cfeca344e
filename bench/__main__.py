"""``python -m bench [NAME] [ARGS...]``: run one benchmark by name, or all of them with no name."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def _names() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    names = _names()
    if argv and argv[0] in ("-h", "--help"):
        print("usage: python -m bench [NAME [ARGS...]]\nbenchmarks: " + ", ".join(names))
        return 0
    if argv and not argv[0].startswith("-"):
        if argv[0] not in names:
            print(f"unknown benchmark {argv[0]!r}; known: {', '.join(names)}", file=sys.stderr)
            return 2
        selected, rest = [argv[0]], argv[1:]
    else:
        selected, rest = names, argv
    status = 0
    for name in selected:
        print(f"== bench {name}")
        module = importlib.import_module(f"bench.bench_{name}")
        status |= module.main(rest)
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
