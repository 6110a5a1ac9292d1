from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.dump_scorable,
    dict(zip(snakemake.params.models, snakemake.input.scores)),
    snakemake.params.unscorable,
    dict(zip(snakemake.params.models, snakemake.output.scores)),
    snakemake.output.counts,
)
