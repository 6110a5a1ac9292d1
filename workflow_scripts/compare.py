from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.compare,
    snakemake.input.predictions,
    snakemake.input.reference,
    snakemake.params.tie_tolerance,
    snakemake.output[0],
)
