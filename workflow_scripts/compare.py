from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.compare_all,
    snakemake.input.predictions,
    snakemake.input.references,
    snakemake.params.tie_tolerance,
    snakemake.output,
)
