from lpselect.inspection import inspect_selector
from lpselect.jobs import run_stage

inp = snakemake.input
run_stage(
    snakemake.log[0],
    inspect_selector,
    snakemake.wildcards.dataset,
    snakemake.wildcards.selector,
    inp.rows,
    inp.scores,
    inp.ifd[0] if inp.ifd else None,
    inp.clusters,
    list(inp.subsets),
    snakemake.params.methods,
    snakemake.output.md,
    snakemake.output.csv,
    inp.tokenized,
)
