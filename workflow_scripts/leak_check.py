from lpselect import stages
from lpselect.study import HELDOUT
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    stages.leak_check,
    snakemake.input.train,
    {HELDOUT: snakemake.input.heldout} | dict(zip(snakemake.params.named, snakemake.input.named)),
    snakemake.output[0],
)
