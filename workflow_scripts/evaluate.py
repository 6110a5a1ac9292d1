from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.evaluate,
    snakemake.input.predictions,
    snakemake.input.get("reference"),
    snakemake.input.rows,
    snakemake.params.tie_tolerance,
    snakemake.output[0],
)
