# Draws the figures of params.drawn (one, or every figure a dataset has) into their output files.
from lpselect import figures
from lpselect.jobs import run_stage

drawn = snakemake.params.drawn
per_figure = len(snakemake.output) // len(drawn)  # the formats of each figure, in order
run_stage(
    snakemake.log[0],
    figures.draw_many,
    drawn,
    tables={name: path for name, path in snakemake.input.items() if name != "scores"},
    score_paths=dict(zip(snakemake.params.scored_models, snakemake.input.scores)),
    outputs={
        name: snakemake.output[i * per_figure : (i + 1) * per_figure]
        for i, name in enumerate(drawn)
    },
    options=snakemake.params.options,
)
