from lpselect import stages
from lpselect.jobs import run_stage

tables = {
    dataset: {"rank_correlation": corr, "overlap": overlap}
    for dataset, corr, overlap in zip(
        snakemake.params.datasets, snakemake.input.rank_correlation, snakemake.input.overlap
    )
}
run_stage(snakemake.log[0], stages.dump_summary, tables, snakemake.params.pairs, snakemake.output[0])
