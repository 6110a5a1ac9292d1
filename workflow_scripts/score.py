from lpselect import stages
from lpselect.jobs import run_stage

run_stage(snakemake.log[0], stages.score, snakemake.input.losses, snakemake.input.rows, snakemake.params.seed,
          snakemake.output[0], snakemake.params.epochs)
