"""Compare runs as a table, a CSV, a bar chart and the differences with their intervals:

    python tools/compare.py work_dirs/multirun/<time> [more work or sweep dirs]
        [--baseline domino=none] [--out DIR] [--ignore KEY ...] [--per-class]
"""
from domino_seg.apis.compare import main

if __name__ == '__main__':
    main()
