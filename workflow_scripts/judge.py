from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.judge_all,
    snakemake.input.responses,
    snakemake.input.references,
    snakemake.params.cfg,
    snakemake.params.cache,
    snakemake.output.summary,
    snakemake.output.verdicts,
)
