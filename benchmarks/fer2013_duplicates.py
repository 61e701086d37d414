"""Count pixel-identical duplicates in FER-2013 and check them against the data README.

Run: ``python benchmarks/fer2013_duplicates.py [PATH]`` (default: $EMOTIONKIT_DATA/fer2013/fer2013.csv.gz).
Prints the counts, the README's numbers and whether they agree, then what the official split
reports (``split_dataset(..., "official")``). Exit status 1 when a count disagrees.
"""

from __future__ import annotations

import sys
import time

from emotionkit.data.duplicates import find_duplicates
from emotionkit.data.fer2013 import read_fer2013
from emotionkit.data.splits import split_dataset

# From ../shared/data/fer2013/README.md, "Known properties of the data".
README = {
    "rows": 32298,
    "distinct": 30766,
    "groups": 1273,
    "rows_in_groups": 2805,
    "spanning Training/PublicTest": 270,
    "conflicting": 47,
}


def main(argv: list[str]) -> int:
    start = time.perf_counter()
    data = read_fer2013(argv[0] if argv else None)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    summary, groups = find_duplicates(data)
    find_s = time.perf_counter() - start
    measured = {
        "rows": summary.rows,
        "distinct": summary.distinct,
        "groups": summary.groups,
        "rows_in_groups": summary.rows_in_groups,
        "spanning Training/PublicTest": summary.spanning.get("PublicTest/Training", 0),
        "conflicting": summary.conflicting,
    }
    print(f"read {summary.rows} rows in {read_s:.1f} s; hashed and grouped in {find_s:.2f} s")
    print(f"{'count':32s} {'measured':>9s} {'README':>9s}")
    ok = True
    for key, value in measured.items():
        agree = value == README[key]
        ok &= agree
        print(f"{key:32s} {value:9d} {README[key]:9d}  {'ok' if agree else 'DIFFERS'}")
    largest = max(groups, key=len)
    print(f"largest group: {len(largest)} rows (CSV rows {data.ids[largest][:8].tolist()}...)")
    splits = split_dataset(data, "official", seed=0)
    print(f"official split (val 10% of Training, seed 0) duplicates: {splits.duplicates}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
