from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.study_tables,
    models=snakemake.params.models,
    metrics_paths=snakemake.input.metrics,
    subset_paths=snakemake.input.subsets,
    score_paths=dict(zip(snakemake.params.proxies, snakemake.input.scores)),
    rows_path=snakemake.input.rows,
    outputs=dict(snakemake.output.items()),
    target_ledgers=snakemake.params.target_ledgers,
    proxy_ledgers=snakemake.params.proxy_ledgers,
    judged=dict(zip(map(tuple, snakemake.params.judged), zip(snakemake.input.judge, snakemake.input.verdicts))),
    bootstrap=snakemake.params.bootstrap,
    pooled_sets=snakemake.params.pooled_sets,
    tie_rule=snakemake.params.tie_rule,
    pairwise_paths=dict(zip(map(tuple, snakemake.params.compared), snakemake.input.pairwise)),
    model_dirs=dict(zip(snakemake.params.targets, snakemake.input.models)),
)
