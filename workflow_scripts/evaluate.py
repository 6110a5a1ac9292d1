from lpselect import stages
from lpselect.jobs import run_stage

# batching is a speed setting, read from the config rather than params (changing it reruns nothing)
cfg = snakemake.config["evaluation"] | snakemake.params.cfg
run_stage(
    snakemake.log[0],
    stages.evaluate,
    snakemake.input.model,
    snakemake.input.rows,
    cfg,
    snakemake.params.max_length,
    snakemake.params.template,
    snakemake.output.predictions,
    snakemake.output.metrics,
    ledger_out=snakemake.output.ledger,
    responses_out=snakemake.output.get("responses"),
    generator=snakemake.params.generator,
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
