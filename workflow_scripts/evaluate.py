from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.evaluate,
    snakemake.input.model,
    snakemake.input.rows,
    snakemake.input.get("reference"),
    snakemake.params.cfg,
    snakemake.params.max_length,
    snakemake.params.template,
    snakemake.params.tie_tolerance,
    snakemake.output.predictions,
    snakemake.output.metrics,
    responses_out=snakemake.output.get("responses"),
    generator=snakemake.params.generator,
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
