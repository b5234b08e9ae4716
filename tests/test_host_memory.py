"""Freed host memory goes back to the OS after every conditioner batch (devices.release_host_memory).

Without it, long adapter-first streams on the CPU grew from 2,257 MiB at 200 clips to 4,562 MiB at 2,000
(benchmarks/evaluate_scale.py --no-release): glibc keeps the pages of freed blocks inside its heaps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from seeingsounds import conditioner as conditioner_module
from seeingsounds.devices import _malloc_trim

glibc = pytest.mark.skipif(_malloc_trim() is None, reason="needs glibc's malloc_trim (Linux)")

# a fragmented heap: 20,000 blocks of 16 KiB (below glibc's mmap threshold), every 50th kept alive
FRAGMENT = textwrap.dedent('''
    import json, os, sys
    import numpy as np
    from seeingsounds.devices import release_host_memory

    def resident():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    blocks = [np.ones(4096, dtype=np.float32) for _ in range(20000)]
    kept = blocks[::50]
    del blocks
    before = resident()
    released = release_host_memory()
    print(json.dumps({"before": before, "after": resident(), "released": released, "kept": len(kept)}))
''')


@glibc
def test_release_hands_freed_pages_of_a_fragmented_heap_back():
    out = subprocess.run([sys.executable, "-c", FRAGMENT], capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["released"] is True and row["kept"] == 400
    # ~312 MiB were freed between the kept blocks; glibc alone keeps them resident
    assert row["before"] - row["after"] > 200 * 2**20, row


def test_every_batch_is_followed_by_one_release(monkeypatch, tiny_conditioner, tiny_encoder):
    calls = []
    monkeypatch.setattr(conditioner_module, "release_host_memory", lambda: calls.append(1) or True)
    conditioner = tiny_conditioner
    rate = conditioner.sample_rate
    waves = [(rate, torch.randn(rate).numpy()) for _ in range(5)]
    batches = list(conditioner.predict(waves, batch_size=2))
    assert [len(next(iter(b.values()))) for b in batches] == [2, 2, 1] and len(calls) == 3
    tokens = torch.randn(5, tiny_encoder.num_tokens, tiny_encoder.hidden_size)
    assert len(list(conditioner.predict_tokens(tokens, batch_size=4))) == 2 and len(calls) == 5
