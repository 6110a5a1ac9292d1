from lpselect import stages
from lpselect.jobs import run_stage

# threads reach the MiniLM encoder only (run_stage would import torch for them, absent from the light
# env of the TF-IDF embedding); a GPU is asked for with MiniLM only
run_stage(
    snakemake.log[0],
    stages.cluster,
    snakemake.input.rows,
    snakemake.params.cfg,
    snakemake.output[0],
    snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
