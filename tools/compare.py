"""Compare runs as a table, a CSV, a bar chart and the differences with their intervals:

    python tools/compare.py work_dirs/multirun/<time> [more work or sweep dirs]
        [--baseline domino=none] [--out DIR] [--ignore KEY ...] [--per-class]
"""
import domino_seg  # (compat fixes and registration)
from domino_seg.apis.compare import main

domino_seg.quiet()  # upstream warnings that repeat ours: off (console.py)


if __name__ == '__main__':
    main()
