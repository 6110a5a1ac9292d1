from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.build_tokenizer,
    snakemake.input.rows,
    snakemake.params.vocab_size,
    snakemake.params.template,
    snakemake.output[0],
)
