"""``python -m movierec.grafana [--check] [--out DIR]``: write (or compare) the dashboard files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from movierec.grafana.dashboards import DASHBOARDS

DEFAULT_OUT = Path("grafana/dashboards")


def render(dashboard: dict[str, Any]) -> str:
    """A dashboard as the file holds it: indented JSON with a final newline."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write every dashboard into ``--out``; with ``--check``, return 1 when a file differs instead."""
    parser = argparse.ArgumentParser(prog="python -m movierec.grafana", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the dashboards folder (grafana/dashboards)")
    parser.add_argument("--check", action="store_true", help="compare the files with the code; write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path = args.out / name
        text = render(build())
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)
    if stale:
        print("out of date (run python -m movierec.grafana): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
