"""Indexing spread over a Ray cluster: ``tpdqa index --ray ADDRESS`` (the extra ``tpdqa[ray]``).

Ray Data carries the work, this process stays the only writer. Files go to parsing tasks
(``map_batches`` over the files' bytes: the same sandboxed reader as a local run, so the
same chunks, chunk ids and sentences); each phase's texts -- the chunks, and for the judge encoder
the sentences and words the answerer's store keeps -- go to **one actor pool per encoder**
(``map_batches`` with a class: each actor loads its model once, one thread per CPU it
holds). The vectors come back here and the usual sync writes them
(:meth:`tpdqa.store.Store.sync` with ``cluster=``): the encoders find every text already
computed (:meth:`tpdqa.embeddings.LazyEmbeddings.precomputed`), so records, BM25, the
sentence store and Chroma are written as by a local run, phase by phase (searchable, then
complete). With several machines, point the index at a shared store (``TPDQA_CHROMA_URL``,
a ``chroma run`` server) and install tpdqa on every node.

    tpdqa index --ray auto                  # a running cluster (ray start --head on this machine)
    tpdqa index --ray 10.0.0.5:6379         # a cluster's head
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from tpdqa.ingest import FileError, Parsed, parse_file
from tpdqa.sandbox import Limits

ENCODE_BATCH = 64  # texts per actor call: the encoders' own batch size, measured best at 32-64 on CPU


class RayCluster:
    """A connection to a Ray cluster that parses files and encodes texts for one writer."""

    def __init__(self, address: str, cpus_per_actor: float = 1.0) -> None:
        """Connect to the cluster at ``address`` (``auto``: the one this machine runs).

        Each encoder actor holds ``cpus_per_actor`` CPUs and runs that many threads; a pool
        has as many actors as the cluster has CPUs for them."""
        try:
            import ray
            import ray.data
        except ImportError:
            raise RuntimeError("Indexing on a Ray cluster needs Ray: pip install 'tpdqa[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, ValueError) as exc:
                raise RuntimeError(f"No Ray cluster answers at '{address}' ({exc}). Start one (ray start --head) "
                                   "or give its head's address: tpdqa index --ray HOST:PORT.") from None
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # tpdqa draws its own bars
        context.print_on_execution_start = False
        self.cpus_per_actor = cpus_per_actor

    @property
    def actors(self) -> int:
        """Actors per encoder pool: the cluster's CPUs, each actor ``cpus_per_actor`` of them."""
        return max(1, int(self._ray.cluster_resources().get("CPU", 1) // self.cpus_per_actor))

    def parse(self, files: list[tuple[str, bytes]], limits: Limits,
              chunking: tuple[int, int] | None) -> list[Parsed]:
        """:func:`tpdqa.ingest.parse_file` of each (source, bytes), on the cluster, in order
        (the ``parse`` hook of :func:`tpdqa.ingest.load_folder`)."""
        dataset = self._ray.data.from_items([{"source": s, "data": d} for s, d in files],
                                            override_num_blocks=len(files))
        parsed = dataset.map_batches(_parse_batch, batch_size=1, batch_format="numpy",
                                     fn_kwargs={"limits": limits, "chunking": chunking})
        by_source = {str(row["source"]): pickle.loads(row["parsed"]) for row in parsed.iter_rows()}
        return [by_source.get(s) or FileError(s, "cannot be read: the cluster returned nothing for it")
                for s, _ in files]

    def vectors(self, model: str, texts: list[str],
                progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        """``model``'s vector of each text, computed by a pool of actors (one model each)."""
        texts = list(dict.fromkeys(texts))
        if not texts:
            return {}
        dataset = self._ray.data.from_items([{"text": t} for t in texts], override_num_blocks=self._blocks(len(texts)))
        encoded = dataset.map_batches(_Encoder, batch_size=ENCODE_BATCH, batch_format="numpy",
                                      fn_constructor_kwargs={"model": model, "threads": max(1, int(self.cpus_per_actor))},
                                      concurrency=min(self.actors, -(-len(texts) // ENCODE_BATCH)),
                                      num_cpus=self.cpus_per_actor)
        out: dict[str, np.ndarray] = {}
        for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
            for text, vector in zip(batch["text"], batch["vector"]):
                out[str(text)] = vector
            if progress is not None:
                progress(len(batch["text"]))
        return out

    def _blocks(self, rows: int) -> int:
        return max(1, min(rows // ENCODE_BATCH, 4 * self.actors))

    def close(self) -> None:
        self._ray.shutdown()


def _parse_batch(batch: dict[str, np.ndarray], limits: Limits, chunking: tuple[int, int] | None) -> dict[str, Any]:
    """A Ray Data task: parse each file of the batch (pickled: Documents are not Arrow rows)."""
    return {"source": batch["source"],
            "parsed": np.array([pickle.dumps(parse_file(str(s), bytes(d), limits, chunking))
                                for s, d in zip(batch["source"], batch["data"])], dtype=object)}


class _Encoder:
    """A Ray Data actor: one encoder, loaded once, ``threads`` threads."""

    def __init__(self, model: str, threads: int) -> None:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass
        from tpdqa.embeddings import LazyEmbeddings

        self.embeddings = LazyEmbeddings(model, threads=threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        return {"text": batch["text"], "vector": np.asarray(self.embeddings.embed_documents(texts), dtype=np.float32)}
