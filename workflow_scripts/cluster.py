from lpselect import stages
from lpselect.jobs import run_stage

run_stage(snakemake.log[0], stages.cluster, snakemake.input.rows, snakemake.params.cfg, snakemake.output[0])
