from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.cluster,
    snakemake.input.rows,
    snakemake.params.cfg,
    snakemake.output[0],
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
