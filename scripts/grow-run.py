#!/usr/bin/env python3
"""Make a large run directory out of a small one, to measure report.html on thousands of records.

Copies stats.json and manifest.json from SRC to DST and repeats the lines of SRC's record files
(trajectories.jsonl, blueprints.jsonl, rejected.jsonl) round-robin until DST holds N records,
giving every copy its own id. The numbers in stats.json stay those of SRC: this is for timing the
page, not for reading it.

Usage: python3 scripts/grow-run.py SRC DST N
then:  apigen-mt report DST && node tests/browser/check-report.js DST/report.html
"""

import json
import shutil
import sys
from pathlib import Path


def renamed(line, k):
    """The record with its id (or blueprint id) given copy number k."""
    record = json.loads(line)
    for key in ("blueprint_id", "id"):
        if isinstance(record.get(key), str):
            record[key] = f"{record[key]}-copy{k}"
    return json.dumps(record, ensure_ascii=False)


def main():
    src, dst, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("stats.json", "manifest.json"):
        if (src / name).exists():
            shutil.copy(src / name, dst / name)
    files = {}
    for name in ("trajectories.jsonl", "blueprints.jsonl", "rejected.jsonl"):
        path = src / name
        if path.exists():
            files[name] = [l for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    total = sum(len(lines) for lines in files.values())
    if total == 0:
        sys.exit(f"{src} holds no records")
    copies = -(-n // total)
    for name, lines in files.items():
        out = [renamed(line, k) for k in range(copies) for line in lines]
        # Trim so that the directory holds exactly n records, in proportion to each file.
        keep = len(out) * n // (total * copies)
        (dst / name).write_text("".join(l + "\n" for l in out[:keep]), encoding="utf-8")
    print(f"{dst}: {sum(len(v) for v in files.values()) * copies} records repeated, trimmed to about {n}")


if __name__ == "__main__":
    main()
