"""Learning-percentage (LP) data selection: a small proxy model picks instruction-tuning data for a larger one.

Library code behind the Snakemake workflow; every module is importable and tested without Snakemake.
"""

__version__ = "0.1.0"
