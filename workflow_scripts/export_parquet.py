from lpselect.export import jsonl_to_parquet
from lpselect.jobs import run_stage

run_stage(snakemake.log[0], jsonl_to_parquet, snakemake.input[0], snakemake.output[0])
