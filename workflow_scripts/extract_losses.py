from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.extract_losses,
    snakemake.input.model,
    snakemake.input.tokenized,
    # batching is a speed setting, read from the config rather than params (changing it reruns nothing)
    snakemake.config["extraction"] | snakemake.params.extraction,
    snakemake.output.losses,
    snakemake.output.ledger,
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
    # one process per GPU of the job (data-parallel inside the job)
    processes=max(1, snakemake.resources.get("gpu", 0)),
    response_only=snakemake.params.response_only,
)
