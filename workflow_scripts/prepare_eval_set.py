from lpselect import stages
from lpselect.jobs import run_stage

run_stage(snakemake.log[0], stages.prepare_eval_set, snakemake.params.spec, snakemake.output[0])
