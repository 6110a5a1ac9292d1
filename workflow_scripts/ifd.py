from lpselect import stages
from lpselect.jobs import run_stage

run_stage(snakemake.log[0], stages.ifd, snakemake.input.prompted, snakemake.input.response_only, snakemake.output[0])
