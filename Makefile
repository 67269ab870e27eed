# Two commands do everything: `make supplement` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= data/synthetic_cohort.csv
OUT    ?= outputs
PARAMS ?=
SCENARIOS ?= scenarios.yml
STAMP  := $(VENV)/.installed

.PHONY: supplement batch test validate lab notebooks synthetic pins benchmark clean

# The environment: created once, reinstalled only when the pins or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; run make PYTHON=python3.11 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

supplement: $(STAMP)  ## build the supplementary material (DATA=registry.csv OUT=dir COLUMNS=map.yml PARAMS="-p estimand ATE" FORCE=1)
	$(BIN)/python -m analysis_lib build --data $(DATA) --out $(OUT) $(if $(COLUMNS),--columns $(COLUMNS)) $(PARAMS) $(if $(FORCE),--force)

batch: $(STAMP)  ## build every scenario of scenarios.yml into outputs/scenarios/ (SCENARIOS=file.yml)
	$(BIN)/python -m analysis_lib batch $(SCENARIOS)

test: $(STAMP)  ## the full test suite, notebooks included (nbval)
	$(BIN)/python -m pytest

validate: $(STAMP)  ## check a registry file against the data dictionary (DATA=... [COLUMNS=map.yml])
	$(BIN)/python -m analysis_lib validate --data $(DATA) $(if $(COLUMNS),--columns $(COLUMNS))

lab: $(STAMP)  ## review the notebooks in JupyterLab
	$(BIN)/jupyter lab notebooks/

notebooks: $(STAMP)  ## re-execute the committed notebooks on the synthetic cohort (their stored outputs)
	$(BIN)/python -m analysis_lib notebooks

synthetic: $(STAMP)  ## regenerate data/synthetic_cohort.csv from the published Table 1
	$(BIN)/python -m analysis_lib synthesize --out data/synthetic_cohort.csv

pins:  ## re-resolve requirements.txt from requirements.in in a scratch environment
	rm -rf .venv-pins && $(PYTHON) -m venv .venv-pins
	.venv-pins/bin/pip install --quiet -r requirements.in
	{ head -n 2 requirements.txt; .venv-pins/bin/pip freeze --all --exclude-editable | grep -viE '^(pip|wheel)=='; } > requirements.txt.new
	mv requirements.txt.new requirements.txt && rm -rf .venv-pins

clean:
	rm -rf $(VENV) outputs .pytest_cache

benchmark: $(STAMP)  ## time each notebook and the whole build (printed, never asserted)
	$(BIN)/python benchmarks/benchmark_build.py
	$(BIN)/python benchmarks/benchmark_analyses.py
	$(BIN)/python benchmarks/benchmark_resample.py
	$(BIN)/python benchmarks/benchmark_incremental.py
