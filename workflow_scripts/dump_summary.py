from lpselect import stages
from lpselect.jobs import run_stage

models = snakemake.params.models
tables = {
    dataset: {
        "scores": dict(zip(models, snakemake.input.scores[i * len(models) : (i + 1) * len(models)])),
        "unscorable": snakemake.input.unscorable[i],
    }
    for i, dataset in enumerate(snakemake.params.datasets)
}
run_stage(
    snakemake.log[0],
    stages.dump_summary,
    tables,
    snakemake.params.pairs,
    snakemake.params.unscorable,
    snakemake.output[0],
)
