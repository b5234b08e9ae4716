"""Evaluation: metrics (AIC, AIS, R@k, caption retrieval), judges (CLIP, Wav2CLIP), reports.

Importing this package is cheap: judges load their models lazily and the runner imports the
pipeline only when it generates images.
"""

from seeingsounds.evaluation.metrics import (
    aic,
    ais,
    caption_retrieval,
    caption_similarity,
    cosine_matrix,
    l2_normalize,
    recall_at_k,
)

__all__ = ["aic", "ais", "caption_retrieval", "caption_similarity", "cosine_matrix", "l2_normalize", "recall_at_k"]
