from lpselect import figures
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    figures.draw,
    snakemake.wildcards.figure,
    tables={name: path for name, path in snakemake.input.items() if name != "scores"},
    score_paths=dict(zip(snakemake.params.scored_models, snakemake.input.scores)),
    outputs=snakemake.output,
    options=snakemake.params.options,
)
