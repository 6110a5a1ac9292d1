from lpselect import stages, study
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.prepare_model,
    snakemake.params.spec,
    snakemake.params.seed,
    snakemake.output[0],
    tokenizer_dir=snakemake.input.tokenizer or None,
    warmup=snakemake.params.warmup,
    hp=snakemake.params.hp,
    max_length=snakemake.params.max_length,
    template=snakemake.params.template,
    # memory, speed and logging: read from the config, not params (changing one reruns nothing)
    knobs=study.training_knobs(snakemake.config, snakemake.wildcards.model),
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
