from lpselect import robustness
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    robustness.write_robustness,
    snakemake.input[0],
    recipes=dict(snakemake.params.recipes),
    targets=list(snakemake.params.targets),
    out_csv=snakemake.output[0],
)
