"""`describe` and `evaluate --no-images` over 10x more clips stay within 1.2x the peak memory.

Each measurement runs in its own process (peak RSS is per process). The aligner is small but its
predictions are large (a [256, 1024] sequence: 1 MiB per clip in fp32), so holding every clip's
prediction at once would add ~400 MiB at 400 clips — far over the 1.2x bound — while streaming a batch
at a time costs the same at 40 and at 400 clips.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent('''
    import json, resource, sys
    from pathlib import Path
    import numpy as np, torch
    from seeingsounds.aligner import SeeingSoundsAligner
    from seeingsounds.conditioner import AudioConditioner
    from seeingsounds.encoders.base import AudioEncoder
    from seeingsounds.retrieval import CaptionIndex

    mode, clips, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    HEADS = [{"name": "seq", "shape": [256, 1024]}, {"name": "pooled", "shape": [64]}]

    class Features(AudioEncoder):
        sample_rate, window_samples, hidden_size, num_tokens, model_id = 16000, 400, 16, 8, "fake"
        def __init__(self):
            super().__init__()
            self.register_buffer("anchor", torch.zeros(1))
        @classmethod
        def from_pretrained(cls, model_id, **kw):
            return cls()
        def _encode_batch(self, waves):
            return torch.from_numpy(waves[:, : 8 * 16].reshape(len(waves), 8, 16).copy())
        def config_dict(self):
            return {}

    torch.manual_seed(0)
    aligner = SeeingSoundsAligner(16, HEADS, order="pool_first", pooling="attention", hidden_dim=64, attention_heads=4)
    conditioner = AudioConditioner(Features(), aligner, device="cpu", dtype="fp32")
    rng = np.random.default_rng(0)
    sources = [(16000, rng.standard_normal(400).astype(np.float32)) for _ in range(clips)]
    if mode == "describe":
        from seeingsounds.describe import Describer
        found = Describer(folder, conditioner=conditioner, batch_size=8).describe(sources, top_k=2)
        result = [d.top.caption for d in found]
    else:
        from seeingsounds.evaluation.metrics import retrieval_scores
        from seeingsounds.evaluation.runner import stream_similarity
        from seeingsounds.runs import RunFolder
        run = RunFolder.find(folder)
        index = CaptionIndex(run.caption_targets(dtype=torch.float32), conditioner.names)
        sim = stream_similarity(conditioner, index, sources, batch_size=8)
        result = retrieval_scores(sim, np.arange(clips) % 4, k=2)["n"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak": peak, "result_size": len(result) if isinstance(result, list) else result}))
''')


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder with 4 class captions whose targets have the aligner's shapes."""
    import torch

    from seeingsounds.captions.caption_set import CaptionEntry, CaptionSet
    from run_fixtures import save_caption_set

    folder = tmp_path_factory.mktemp("run")
    captions = CaptionSet()
    for name in "abcd":
        captions.add(CaptionEntry(f"the sound {name}", "class", (name,)))
    torch.manual_seed(1)
    save_caption_set(folder, captions, {"seq": torch.randn(4, 256, 1024), "pooled": torch.randn(4, 64)})
    return folder


def _peak(mode: str, clips: int, folder) -> int:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(clips), str(folder)], capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["result_size"] == clips
    return out["peak"]


@pytest.mark.parametrize("mode", ["describe", "evaluate"])
def test_ten_times_the_clips_within_1_2x_the_peak_memory(run, mode):
    small, large = _peak(mode, 40, run), _peak(mode, 400, run)
    print(f"{mode}: peak RSS {small / 2**20:.0f} MiB at 40 clips, {large / 2**20:.0f} MiB at 400 ({large / small:.2f}x)")
    # holding 400 predictions of 1 MiB would add ~400 MiB
    assert large <= 1.2 * small
