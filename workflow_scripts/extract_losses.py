from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.extract_losses,
    snakemake.input.model,
    snakemake.input.rows,
    snakemake.params.extraction,
    snakemake.params.max_length,
    snakemake.params.template,
    snakemake.output.losses,
    snakemake.output.ledger,
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
    # one process per GPU of the job (data-parallel inside the job)
    processes=max(1, snakemake.resources.get("gpu", 0)),
    response_only=snakemake.params.response_only,
)
