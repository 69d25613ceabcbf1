"""Print the table of an existing bench JSON: ``python -m benchmarks.report bench_out/bench.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.run import table


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "bench_out/bench.json")
    print(table(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
