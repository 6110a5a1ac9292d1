from lpselect import figures
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    figures.draw,
    snakemake.wildcards.figure,
    tables={name: snakemake.input[name] for name in ("metrics", "composition", "rank_correlation")},
    score_paths=dict(zip(snakemake.params.proxies, snakemake.input.scores)),
    outputs=snakemake.output,
)
