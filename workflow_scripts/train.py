# Serves train_proxy (keeps the epochs its study reads) and finetune_target (keeps the last).
from lpselect import stages, study
from lpselect.jobs import run_stage

if snakemake.rule == "train_proxy":
    epoch_outputs = dict(enumerate(snakemake.output.epochs, start=1))
else:
    epoch_outputs = {snakemake.params.hp["epochs"]: snakemake.output.model}

run_stage(
    snakemake.log[0],
    stages.train_model,
    snakemake.input.model,
    snakemake.input.tokenized,
    snakemake.input.get("subset"),
    snakemake.params.hp,
    snakemake.params.seed,
    epoch_outputs,
    snakemake.params.state,
    snakemake.output.ledger,
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
    # one process per GPU of the job (data-parallel inside the job)
    processes=max(1, snakemake.resources.get("gpu", 0)),
    # memory, speed and logging: read from the config, not params (changing one reruns nothing)
    knobs=study.training_knobs(snakemake.config, snakemake.wildcards.get("proxy") or snakemake.wildcards.target),
    loss_curve_out=snakemake.output.loss_curve,
)
