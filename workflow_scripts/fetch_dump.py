from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.fetch_dump,
    snakemake.params.source,
    snakemake.wildcards.dataset,
    snakemake.wildcards.model,
    snakemake.output,
)
