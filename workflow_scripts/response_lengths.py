from lpselect import stages
from lpselect.jobs import run_stage

run_stage(snakemake.log[0], stages.response_lengths, snakemake.input.model, snakemake.input.rows, snakemake.output[0],
          snakemake.params.template)
