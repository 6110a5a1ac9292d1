from lpselect.export import export_subset
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    export_subset,
    snakemake.input.subset,
    snakemake.input.rows,
    snakemake.input.get("scores"),
    snakemake.input.clusters,
    snakemake.output[0],
    snakemake.params.field_map,
)
