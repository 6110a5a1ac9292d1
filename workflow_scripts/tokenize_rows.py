# The training split tokenized once per (dataset, tokenizer); every training and extraction job reads it.
from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.tokenize,
    snakemake.input.tokenizer,
    snakemake.input.rows,
    snakemake.params.max_length,
    snakemake.params.template,
    snakemake.output[0],
)
