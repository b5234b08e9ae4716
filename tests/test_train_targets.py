"""The target store: rows read per batch, resident rows on the device within a budget, one fp16 copy."""

from __future__ import annotations

import torch

from seeingsounds.training.targets import RowRetrieval, TargetStore, device_budget_bytes, write_store


def _store(tmp_path, n=10):
    g = torch.Generator().manual_seed(0)
    full = {"seq": torch.randn(n, 4, 6, generator=g), "pooled": torch.randn(n, 5, generator=g)}
    texts = [f"caption {i}" for i in range(n)]
    calls = []

    def targets_of(chunk):
        calls.append(len(chunk))
        rows = [texts.index(t) for t in chunk]
        return {k: v[rows] for k, v in full.items()}

    write_store(tmp_path / "targets.safetensors", texts, {"seq": (4, 6), "pooled": (5,)}, targets_of)
    return full, calls


def test_gather_reads_rows_and_serves_resident_ones_from_the_table(tmp_path):
    full, calls = _store(tmp_path, 70)
    assert calls == [32, 32, 6]  # written a chunk at a time
    store = TargetStore(tmp_path / "targets.safetensors", ["seq", "pooled"])
    rows = torch.tensor([5, 69, 0, 5, 33])
    streamed = store.gather(rows)
    for k in full:
        assert streamed[k].dtype == torch.float16  # the stored dtype: no fp32 copy of the batch's targets
        assert torch.equal(streamed[k], full[k].half()[rows])
    assert store.row_bytes == (24 + 5) * 2
    assert not store.keep_resident(range(10), budget_bytes=10 * 29 * 4 - 1, dtype=torch.float32)  # does not fit
    assert store.keep_resident(range(10), budget_bytes=10 * 29 * 4, dtype=torch.float32)
    assert store.resident_rows == 10
    mixed = store.gather(rows)  # 5, 0, 5 resident; 69, 33 read from the file
    for k in full:
        assert mixed[k].dtype == torch.float32 and torch.equal(mixed[k], streamed[k].float())


def test_budget_is_zero_on_the_cpu_and_explicit_elsewhere():
    assert device_budget_bytes(torch.device("cpu"), 100.0) == 0
    assert device_budget_bytes(torch.device("meta"), 1.5) == 3 << 29


def test_retrieval_streams_when_the_index_would_be_too_large(tmp_path):
    full, _ = _store(tmp_path, 70)
    store = TargetStore(tmp_path / "targets.safetensors", ["seq", "pooled"])
    pred = {"seq": torch.randn(3, 4, 6), "pooled": torch.randn(3, 5)}
    rows = list(range(0, 70, 2))
    whole = RowRetrieval(store, rows, None, torch.device("cpu"), max_bytes=1 << 30)
    streamed = RowRetrieval(store, rows, None, torch.device("cpu"), max_bytes=0)
    assert whole.index is not None and streamed.index is None
    torch.testing.assert_close(streamed.similarity(pred), whole.similarity(pred))
    assert whole.similarity(pred).shape == (3, 35)
