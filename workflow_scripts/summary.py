from lpselect.jobs import run_stage
from lpselect.summary import write_summary

inp, datasets, proxies = snakemake.input, snakemake.params.datasets, snakemake.params.proxies
tables = {
    d: {name: inp[name][i] for name in ("stats", "leaks", "seeds", "paired", "subsets", "rank_correlation", "transfer", "worth")}
    for i, d in enumerate(datasets)
}
for i, d in enumerate(datasets[: len(inp.robustness)]):  # proxy recipes, where the study has them
    tables[d]["robustness"] = inp.robustness[i]
# expand() lists the score tables dataset by dataset, proxies within
scores = {d: dict(zip(proxies, inp.scores[i * len(proxies) : (i + 1) * len(proxies)])) for i, d in enumerate(datasets)}
run_stage(snakemake.log[0], write_summary, tables, scores, snakemake.output[0], list(inp.inspect), snakemake.params.judge,
          recipes=dict(snakemake.params.recipes))
