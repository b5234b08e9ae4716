"""Caption retrieval on real Debian sounds with the ``offline`` preset (real aisfx + MiniLM weights),
for the full model and the paper's Table 4 ablations, several seeds (mean ± std).

    python benchmarks/offline_alignment.py [--seeds 0 1 2] [--epochs 60] [--out runs/offline-alignment]

Needs the Debian packages sound-theme-freedesktop, sonic-pi-samples, tuxpaint-stamps-default
(scripts/system-deps.sh). Prints a Markdown table and writes results.json beside the runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from seeingsounds.evaluation.offline_alignment import format_table, run_offline_alignment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/offline-alignment")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--unseen-fraction", type=float, default=0.2)
    args = parser.parse_args()
    start = time.perf_counter()
    results = run_offline_alignment(args.out, seeds=args.seeds, epochs=args.epochs,
                                    unseen_fraction=args.unseen_fraction)
    Path(args.out, "results.json").write_text(json.dumps(results, indent=1, default=str))
    sizes = results["sizes"][args.seeds[0]]
    print(f"\nDebian real sounds: {sizes['seen_classes']} seen classes ({sizes['train']} train, {sizes['val']} val, "
          f"{sizes['test']} test clips), {sizes['unseen_classes']} unseen classes ({sizes['unseen']} clips); "
          f"seeds {args.seeds}; {time.perf_counter() - start:.0f} s\n")
    print(format_table(results))


if __name__ == "__main__":
    main()
