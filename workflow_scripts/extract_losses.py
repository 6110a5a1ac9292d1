from lpselect import stages
from lpselect.jobs import run_stage

# batching is a speed setting, read from the config rather than params (changing it reruns nothing)
cfg = snakemake.config["extraction"] | snakemake.params.extraction
gpus = snakemake.resources.get("gpu", 0)
if snakemake.params.response_only:  # IFD's second pass: one model
    run_stage(snakemake.log[0], stages.extract_losses, snakemake.input.models[0], snakemake.input.tokenized, cfg,
              snakemake.output.losses[0], snakemake.output.ledger[0], threads=snakemake.threads, gpus=gpus,
              # one process per GPU of the job (data-parallel inside the job)
              processes=max(1, gpus), response_only=True)
else:  # every epoch of one proxy
    run_stage(snakemake.log[0], stages.extract_epochs, list(snakemake.input.models), snakemake.input.tokenized, cfg,
              list(snakemake.output.losses), list(snakemake.output.ledger), snakemake.params.state,
              snakemake.params.extraction, threads=snakemake.threads, gpus=gpus, processes=max(1, gpus))
