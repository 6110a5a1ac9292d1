from lpselect import stages
from lpselect.jobs import run_stage

# batching is a speed setting, read from the config rather than params (changing it reruns nothing)
cfg = snakemake.config["evaluation"] | snakemake.params.cfg

run_stage(
    snakemake.log[0],
    stages.responses,
    snakemake.input.rows,
    snakemake.params.generator,
    snakemake.output[0],
    model_dir=snakemake.input.get("model"),
    cfg=cfg,
    template=snakemake.params.template,
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
