from lpselect import stages
from lpselect.jobs import run_stage
from lpselect.study import HELDOUT

# batching is a speed setting, read from the config rather than params (changing it reruns nothing)
cfg = snakemake.config["evaluation"] | snakemake.params.cfg
sets = snakemake.params.response_sets
# the named sets' prompts, in the order of their names (the held-out split's are input.rows)
prompts = dict(zip([name for name in sets if name != HELDOUT], snakemake.input.sets))
run_stage(
    snakemake.log[0],
    stages.evaluate,
    snakemake.input.model,
    snakemake.input.rows,
    cfg,
    snakemake.params.max_length,
    snakemake.params.template,
    snakemake.output.predictions,
    snakemake.output.metrics,
    ledger_out=snakemake.output.ledger,
    responses={
        name: (prompts.get(name), out)
        for name, out in zip(sets, snakemake.output.responses)
    },
    generator=snakemake.params.generator,
    threads=snakemake.threads,
    gpus=snakemake.resources.get("gpu", 0),
)
