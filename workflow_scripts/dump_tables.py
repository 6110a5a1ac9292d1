from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.dump_tables,
    dict(zip(snakemake.params.models, snakemake.input.scores)),
    snakemake.params.fractions,
    dict(snakemake.output.items()),
)
