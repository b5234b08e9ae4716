"""Live mode on this machine: pictures per second and the delay from sound to picture.

    python benchmarks/live.py                          # the demo's run (demo-output/run; the demo runs first if missing)
    python benchmarks/live.py --run demo-output/run --json live.json
    python benchmarks/live.py --run RUN --hop 0.25 --window 2 --threads 1 --device cpu

The stream: the six bundled example sounds one after another (bell, choir, crow, drums, guitar, piano;
12.6 s), through :mod:`seeingsounds.live` exactly as ``seeingsounds live`` runs it:

* **as fast as possible**: every hop of the stream in order, one picture each: the pictures per second
  the machine can make (the first picture, which warms up, not counted);
* **real time**: the stream played at its speed (a microphone's pace), a picture per hop when the
  machine keeps up, else from the newest window (hops skipped): pictures per second and the latency
  from the arrival of a window's newest sound to its picture (mean, 95th percentile, max).

Goals (issue 20, CPU with the offline preset): at least 2 pictures/s and at most 1 s latency.
:func:`measure` is what ``benchmarks/gpu.py`` calls for its live part at real size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import machine_name

from seeingsounds.assets import example_sounds
from seeingsounds.audio.io import read_audio, resample
from seeingsounds.engine import Engine
from seeingsounds.live import DEFAULT_EASE, LiveOptions, array_blocks, live_frames
from seeingsounds.request import LoadOptions, Settings

GOALS = {"pictures_per_s": 2.0, "latency_s": 1.0}
STREAM_RATE = 16000  # the bundled sounds' rate


def example_stream() -> tuple[np.ndarray, int]:
    """The bundled example sounds one after another, mono at :data:`STREAM_RATE`."""
    waves = []
    for path in example_sounds().values():
        wave, rate = read_audio(path)
        waves.append(resample(wave, rate, STREAM_RATE))
    return np.concatenate(waves), STREAM_RATE


def measure(engine: Engine, wave: np.ndarray, rate: int, *, hop: float, window: float | None,
            realtime: bool, ease: float = DEFAULT_EASE, settings: Settings | None = None) -> dict[str, Any]:
    """One pass of live mode over ``wave``: pictures per second and latency (seconds), the first picture
    (warm-up) left out of both."""
    source = array_blocks(wave, rate, as_fast_as_possible=not realtime)
    options = LiveOptions(hop=hop, ease=ease, window=window)
    done: list[float] = []
    latencies: list[float] = []
    skipped = 0
    start = time.perf_counter()
    for frame in live_frames(engine, source, settings=settings, options=options):
        if engine.pipe.device.type == "cuda":
            torch.cuda.synchronize(engine.pipe.device)
        done.append(time.perf_counter())
        latencies.append(frame.latency)
        skipped += frame.skipped
    timed = np.array(latencies[1:] or latencies)
    span = done[-1] - done[0] if len(done) > 1 else done[-1] - start
    return {"mode": "real time" if realtime else "as fast as possible", "stream_s": len(wave) / rate,
            "hop_s": hop, "window_s": window, "pictures": len(done), "skipped_hops": skipped,
            "seconds": done[-1] - start, "pictures_per_s": (len(done) - 1) / span if len(done) > 1 else 1 / span,
            "latency_mean_s": float(timed.mean()), "latency_p95_s": float(np.percentile(timed, 95)),
            "latency_max_s": float(timed.max())}


def demo_run(out: Path) -> Path:
    """The demo's run in ``out`` (the demo runs first when it is missing; a second time reuses it)."""
    run = out / "run"
    if not (run / "config.json").is_file():
        from seeingsounds.demo import run_demo

        print(f"no trained run in {run}: running the demo first (`seeingsounds demo -o {out}`)", file=sys.stderr)
        run_demo(out, progress=False)
    return run


def main() -> None:
    from seeingsounds.demo import CLIP_SECONDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained run (default: the demo's, in --demo-out)")
    parser.add_argument("--demo-out", type=Path, default=Path("demo-output"))
    parser.add_argument("--hop", type=float, default=0.25, help="seconds of new sound per picture (default 0.25)")
    parser.add_argument("--window", type=float, default=CLIP_SECONDS,
                        help=f"seconds heard (default {CLIP_SECONDS:g}: the demo's clips)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads on the CPU (default: torch's; on a shared machine "
                        "1 is faster: threads that wait for each other stall)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = args.run or demo_run(args.demo_out)
    t0 = time.perf_counter()
    engine = Engine.load(LoadOptions(checkpoint=str(run), device=args.device))
    load_s = time.perf_counter() - t0
    wave, rate = example_stream()
    settings = Settings(seed=0)
    rows = [measure(engine, wave, rate, hop=args.hop, window=args.window, realtime=realtime, settings=settings)
            for realtime in (False, True)]
    resolved = engine.resolve(settings)
    machine = machine_name(engine.pipe.device)
    print(f"live mode, preset {engine.preset.name}, {resolved['width']}x{resolved['height']}, "
          f"{resolved['num_inference_steps']} steps, run {run}; {machine}; model loaded in {load_s:.1f} s")
    print("| stream | pictures | hops skipped | pictures/s | latency mean | p95 | max |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']}, {r['stream_s']:.1f} s, hop {r['hop_s']:g} s, window {r['window_s']:g} s | "
              f"{r['pictures']} | {r['skipped_hops']} | {r['pictures_per_s']:.1f} | {r['latency_mean_s'] * 1000:.0f} ms"
              f" | {r['latency_p95_s'] * 1000:.0f} ms | {r['latency_max_s'] * 1000:.0f} ms |")
    live = rows[1]
    met = live["pictures_per_s"] >= GOALS["pictures_per_s"] and live["latency_p95_s"] <= GOALS["latency_s"]
    print(f"goal (>= {GOALS['pictures_per_s']:g} pictures/s, <= {GOALS['latency_s']:g} s latency, real time): "
          + ("met" if met else "NOT met"))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "preset": engine.preset.name, "run": str(run),
                                         "size": f"{resolved['width']}x{resolved['height']}",
                                         "steps": resolved["num_inference_steps"], "load_s": load_s,
                                         "goals": GOALS, "goals_met": met, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
