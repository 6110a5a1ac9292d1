"""A shrunken study on chat rows end to end: a messages JSONL built from real Alpaca rows (single turn
and generated two-round conversations with a system prompt), fresh models with the ChatML template,
`snakemake select_only` (subsets exported, picks inspected, no target trained), then the whole study."""

import json
import time

import pandas as pd
import pytest

from lpselect.chat_example import chat_rows

from conftest import SHARED, run_snakemake, shrunken_config

ALPACA = SHARED / "data" / "alpaca-42598.jsonl"


def chat_config(path) -> dict:
    config = shrunken_config()
    config["prompt_template"] = "chat"
    config["max_length"] = 192
    config["datasets"] = {"mychat": {"source": "local", "path": str(path), "format": "messages", "test_size": 8,
                                     "seed": 1}}
    config["fresh_models"]["tokenizer_dataset"] = "mychat"
    config["grid"]["datasets"] = ["mychat"]
    config["clustering"]["n_clusters"] = 3
    # one proxy: what is particular to chat rows (the template, the exports, the inspection) is the same
    # for every proxy; two proxies of one study are the end-to-end tests' (tests/test_workflow.py)
    config["grid"]["proxies"] = ["m-a"]
    # and the proxy's own base model as the target: one model prepared (a second model size is the
    # end-to-end tests' too)
    config["grid"]["targets"] = ["m-a"]
    return config


@pytest.mark.slow
@pytest.mark.skipif(not ALPACA.exists(), reason=f"needs {ALPACA} (../shared is absent)")
def test_chat_study_select_only_then_everything(workdir):
    source = chat_rows(ALPACA, 32, 16)
    path = workdir / "mychat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in source))
    config = chat_config(path)

    start = time.monotonic()
    run_snakemake(workdir, config, "--cores", "2", "select_only")
    select_only_s = time.monotonic() - start
    results = workdir / "results"
    assert not (results / "targets").exists() and not (results / "eval").exists()  # nothing fine-tuned
    train_ids = [r["id"] for r in map(json.loads, (results / "datasets/mychat/train.jsonl").read_text().splitlines())]
    exports = sorted((results / "export/mychat").rglob("*.jsonl"))
    assert {p.stem for p in exports} == {"lp1_cluster_k2_hard_seed42", "random_cluster_k2_hard_seed42"}
    assert len(exports) == 2  # lp1 by the proxy, clust_rand
    scores = pd.read_csv(results / "scores/mychat/m-a.csv").set_index("id")
    clusters = pd.read_csv(results / "clusters/mychat.csv").set_index("id")["cluster"]
    for export in exports:
        chosen = json.loads((results / "subsets/mychat" / export.parent.name / f"{export.stem}.json").read_text())
        rows = [json.loads(line) for line in export.read_text().splitlines()]
        assert [r["lpselect_id"] for r in rows] == chosen["ids"]
        for r in rows:
            # the source row as it was, plus the four columns
            line = int(r["lpselect_id"].rsplit("-", 1)[1])
            assert {k: v for k, v in r.items() if not k.startswith("lpselect_")} == source[line - 1]
            assert r["lpselect_cluster"] == clusters[r["lpselect_id"]] and r["lpselect_rank"] >= 1
        if export.stem.startswith("lp1") and export.parent.name == "m-a":
            assert [r["lpselect_score"] for r in rows] == pytest.approx(scores.loc[chosen["ids"], "lp1"].tolist())
            # hard half per cluster: ranks 1 .. ceil(n/2) of each cluster
            sizes = clusters.loc[train_ids].value_counts()
            for c, g in pd.DataFrame(rows).groupby("lpselect_cluster"):
                assert sorted(g["lpselect_rank"]) == list(range(1, -(-sizes[c] // 2) + 1))
    inspect = (results / "inspect/mychat/m-a.md").read_text()
    assert "**lp1**" in inspect and "| hardest | 1 |" in inspect and "What each cluster kept" in inspect
    table = pd.read_csv(results / "inspect/mychat/m-a.csv", keep_default_na=False)
    assert set(table["end"]) == {"hardest", "easiest"} and (table["trajectory"].str.count("→") == 2).all()

    start = time.monotonic()
    run_snakemake(workdir, config, "--cores", "2")
    rest_s = time.monotonic() - start
    # checkpoints are temporary (keep: the default): proxy epochs went once their losses were out, targets
    # once evaluated, and no resume state is left
    assert not list((results / "proxies").rglob("*.safetensors")) and not (results / "targets").exists()
    assert not (results / ".state").exists() or not any((results / ".state").rglob("*.safetensors"))
    summary = (results / "summary.md").read_text()
    assert "## What was picked" in summary and "what m-a picked" in summary
    metrics = pd.read_csv(results / "tables/mychat/metrics.csv")
    assert metrics["heldout_ppl"].notna().all()
    predictions = pd.read_csv(results / "eval/mychat/m-a/none/full_seed42/predictions.csv", keep_default_na=False)
    assert len(predictions) == 8
    print(f"\nchat study: select_only {select_only_s:.0f} s, the rest {rest_s:.0f} s")
    print(inspect)


def test_select_only_exports_without_fine_tuning(workdir):
    """`snakemake select_only` plans selection, export and inspection but no target fine-tune; a parquet
    input is exported as parquet too."""
    from test_workflow import job_counts

    config = chat_config(workdir / "mychat.parquet")
    counts = job_counts(run_snakemake(workdir, config, "-n", "--cores", "2", "--", "select_only").stdout)
    assert counts["export_subset"] == counts["export_parquet"] == counts["select"] == 2
    assert counts["inspect"] == 1  # one per proxy
    assert not {"finetune_target", "evaluate", "aggregate"} & set(counts)
    jsonl = chat_config(workdir / "mychat.jsonl")
    counts = job_counts(run_snakemake(workdir, jsonl, "-n", "--cores", "2", "--", "select_only").stdout)
    assert "export_parquet" not in counts and counts["export_subset"] == 2
