from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.responses,
    snakemake.input.rows,
    snakemake.params.generator,
    snakemake.output[0],
    model_dir=snakemake.input.get("model"),
    cfg=snakemake.params.cfg,
    template=snakemake.params.template,
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
