"""Embedding models as tpdqa loads them."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_minilm_loads_without_scikit_learn_which_still_works_after():
    """sentence-transformers imports scikit-learn for a helper that embedding never calls;
    tpdqa defers it (a cold `tpdqa ask` is 1.5 s shorter). The helper and scikit-learn
    itself must still work when something does use them."""
    script = textwrap.dedent("""
        import sys
        import numpy as np
        from tpdqa.embeddings import get_embeddings
        vector = get_embeddings("sentence-transformers/all-MiniLM-L6-v2").embed_query("memory chips")
        print(len(vector), "sklearn" in sys.modules)
        from sentence_transformers.util import similarity
        print(similarity.pairwise_distances(np.ones((1, 3)), np.zeros((1, 3))).round(3).tolist())
        from sklearn.metrics import f1_score
        print(f1_score([1, 0, 1], [1, 0, 0]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["384 False", "[[1.732]]", "0.6666666666666666"]
