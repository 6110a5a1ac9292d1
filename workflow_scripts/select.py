from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.select,
    snakemake.wildcards.subset,
    snakemake.input.rows,
    snakemake.input.get("scores"),
    snakemake.input.get("clusters"),
    snakemake.output[0],
    snakemake.params.options,
    snakemake.input.get("pool"),
)
