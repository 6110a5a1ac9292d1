from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.predict,
    snakemake.input.model,
    snakemake.input.rows,
    snakemake.params.cfg,
    snakemake.params.max_length,
    snakemake.params.template,
    snakemake.output.predictions,
    responses_out=snakemake.output.get("responses"),
    generator=snakemake.params.generator,
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
