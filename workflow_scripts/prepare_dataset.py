from lpselect import stages
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.prepare_dataset,
    snakemake.wildcards.dataset,
    snakemake.params.spec,
    snakemake.output.train,
    snakemake.output.test,
    snakemake.output.stats,
    list(snakemake.input.eval_sets) if snakemake.params.drop_leaked else None,
)
