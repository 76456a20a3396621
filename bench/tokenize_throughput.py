"""Tokenization throughput of the dataset pipeline on ~50k alpaca-style rows (the sample repeated).

Prints rows/s for a cold run (read, validate, render, tokenize, split, write the cache) and the time of a warm run
served from the cache. Usage: python bench/tokenize_throughput.py [--rows 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()

    import resources
    from engine.heavy.data import pipeline
    from engine.heavy.models.resolve import DEMO, load_tokenizer

    sample = json.loads(resources.path("sample/harbor_lights.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LLAMADESK_HOME", str(Path(tmp) / "home"))
        data = Path(tmp) / "rows.jsonl"
        with data.open("w", encoding="utf-8") as out:
            for i in range(args.rows):
                row = dict(sample[i % len(sample)])
                row["instruction"] = f"{row['instruction']} (#{i})"  # unique, so no row is a duplicate
                out.write(json.dumps(row) + "\n")
        tokenizer = load_tokenizer(DEMO, progress=lambda m: None)
        start = time.perf_counter()
        prepared = pipeline.prepare(data, tokenizer, pipeline.DataSettings(), use_cache=False)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        again = pipeline.prepare(data, tokenizer, pipeline.DataSettings())
        warm = time.perf_counter() - start
    assert prepared.report.rows_usable == args.rows and again.cache_hit
    print(f"rows: {args.rows}, tokens: {prepared.stats.total_tokens:,}")
    print(f"cold: {cold:.1f} s = {args.rows / cold:,.0f} rows/s ({prepared.stats.total_tokens / cold:,.0f} tokens/s)")
    print(f"warm (cache hit): {warm:.2f} s")


if __name__ == "__main__":
    main()
