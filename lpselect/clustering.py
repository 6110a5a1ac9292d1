"""Cluster assignment of training rows: an embedding of each row's text, then seeded KMeans.

The text is the paper's: "Instruction: {instruction input} Response: {output}". The default embedding
is a cheap TF-IDF over character n-grams reduced with truncated SVD; the paper's MiniLM embedding plugs
in as another `embedding` method.
"""

import logging

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


EMBEDDINGS = {"tfidf": tfidf_embedding}


def assign_clusters(rows: list[dict], n_clusters: int, embedding: str, dims: int, seed: int) -> np.ndarray:
    texts = [cluster_text(r) for r in rows]
    vectors = EMBEDDINGS[embedding](texts, dims, seed)
    k = min(n_clusters, len(rows))
    labels = KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(vectors)
    log.info("%d rows in %d clusters (sizes %d..%d)", len(rows), k, np.bincount(labels).min(), np.bincount(labels).max())
    return labels
