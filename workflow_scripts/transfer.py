from lpselect import transfer
from lpselect.jobs import run_stage

run_stage(
    snakemake.log[0],
    transfer.write_transfer,
    subset_paths=dict(zip(map(tuple, snakemake.params.subsets), snakemake.input.subsets)),
    score_paths=dict(zip(snakemake.params.proxies, snakemake.input.scores)),
    ifd_paths=dict(zip(snakemake.params.ifd_proxies, snakemake.input.ifd)),
    out_csv=snakemake.output[0],
    clusters_path=snakemake.input.clusters[0] if snakemake.input.clusters else None,
)
