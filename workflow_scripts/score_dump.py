from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.score_dump,
    snakemake.input,
    snakemake.wildcards.dataset,
    snakemake.params.seed,
    snakemake.output[0],
)
