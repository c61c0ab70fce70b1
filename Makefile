# One command for each thing a person does. CI (.ci/run) calls `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt constraints.txt pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)
export TF_USE_LEGACY_KERAS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help install system-deps run pipeline pipeline-quick serve airflow mlflow pushgateway test test-quick lint format clean-data

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements.txt constraints.txt pyproject.toml
	$(BIN)/pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)  ## create .venv (if missing) and install the pinned stack

HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2

run: install  ## fetch ML-100K, run the pipeline (dvc repro), print the results, then serve the API
	$(BIN)/dvc repro
	@echo
	@$(BIN)/movierec report
	@echo
	@echo "Serving on http://$(HOST):$(PORT) (docs at /docs). Try, from another shell:"
	@echo "  curl -s -X POST http://$(HOST):$(PORT)/api/v1/recommendations -H 'Content-Type: application/json' -d '{\"user_id\": 1, \"k\": 5}'"
	@echo "Ctrl-C stops the server."
	$(BIN)/movierec serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

pipeline: install  ## run the pipeline only (dvc repro) and print the results table
	$(BIN)/dvc repro
	@$(BIN)/movierec report

QUICK_STEPS := "data fetch" "data prepare" split features baselines tune "train retrieval" "index build" \
	"train ranking" ablation "evaluate --recs data/recs/baselines data/recs/retrieval data/recs/ranking" bundle

pipeline-quick: install  ## every step with profiles/quick.yaml (one seed, tiny search) in .quick/: minutes, for development
	@mkdir -p .quick && cp params.yaml .quick/ && rm -rf .quick/profiles && cp -r profiles .quick/
	@cd .quick && for step in $(QUICK_STEPS); do echo "> movierec --profile quick $$step"; \
	  $(abspath $(BIN))/movierec --profile quick $$step || exit 1; done
	@cd .quick && $(abspath $(BIN))/movierec report
	@echo "(quick profile, outputs in .quick/: not the report's numbers; run 'dvc repro' for those)"

serve: install  ## serve the current bundle (after make run or make pipeline)
	$(BIN)/movierec serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

# Debian packages for the integration tests: Prometheus, the Pushgateway and wrk install a command of
# the same name; postgresql (the storage backend's tests start a server of their own) installs its
# programs under /usr/lib/postgresql/<version>/bin, so a package counts as present when dpkg says so
DEBIAN_PACKAGES := prometheus prometheus-pushgateway wrk postgresql

AIRFLOW_PORT ?= 8080
AIRFLOW_HOME_DIR ?= $(HOME)/.cache/movierec/airflow
PROJECT_DIR ?= $(CURDIR)

airflow: install  ## Airflow (standalone) with this project's DAG: UI on AIRFLOW_PORT, home outside git
	@mkdir -p "$(AIRFLOW_HOME_DIR)"
	@echo "Airflow UI: http://127.0.0.1:$(AIRFLOW_PORT)  (DAG ml_pipeline_dag, project $(PROJECT_DIR))"
	@echo "Log in as admin; the password is in $(AIRFLOW_HOME_DIR)/simple_auth_manager_passwords.json.generated"
	@echo "(written at the first start). Trigger over REST: see README, 'Run the pipeline from Airflow'."
	AIRFLOW_HOME="$(AIRFLOW_HOME_DIR)" AIRFLOW__CORE__DAGS_FOLDER="$(abspath dags)" \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False \
	AIRFLOW__API__PORT=$(AIRFLOW_PORT) \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$(AIRFLOW_PORT)/execution/ \
	MOVIEREC_PROJECT_DIR="$(PROJECT_DIR)" $(BIN)/airflow standalone

MLFLOW_PORT ?= 5000

mlflow: install  ## the MLflow UI on the project's embedded store (mlflow/): runs, versions, aliases
	@mkdir -p mlflow
	@echo "MLflow UI: http://127.0.0.1:$(MLFLOW_PORT)  (store: mlflow/mlflow.db, artifacts: mlflow/artifacts)"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath mlflow)/mlflow.db \
	  --default-artifact-root $(abspath mlflow)/artifacts --host 127.0.0.1 --port $(MLFLOW_PORT)

pushgateway: system-deps  ## a Prometheus Pushgateway on 127.0.0.1:9091 (export MOVIEREC_PUSHGATEWAY=127.0.0.1:9091)
	@mkdir -p $(HOME)/.cache/movierec
	prometheus-pushgateway --web.listen-address=127.0.0.1:9091 --persistence.file=$(HOME)/.cache/movierec/pushgateway.data

system-deps:  ## Debian packages the integration tests use (Prometheus, the Pushgateway, the wrk load generator, PostgreSQL)
	@missing=$$(for p in $(DEBIAN_PACKAGES); do command -v $$p >/dev/null \
	  || dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null | grep -qx installed || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=no; fi; \
	  if [ "$$sudo" != no ] && command -v apt-get >/dev/null; then \
	    $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "note: install" $$missing "(apt-get install, as root) to run their integration tests"; fi; \
	fi

test: install system-deps lint  ## install what the tests need, lint, then run every test (unit and integration)
	$(BIN)/python -m pytest -q

lint: install  ## ruff: lint and formatting check (fix with: make format)
	$(BIN)/ruff check src tests dags
	$(BIN)/ruff format --check src tests dags

format: install  ## ruff: fix what can be fixed and format the code
	$(BIN)/ruff check --fix src tests dags
	$(BIN)/ruff format src tests dags

test-quick: install  ## unit tests only
	$(BIN)/python -m pytest -q -m "not integration"

clean-data:  ## remove generated data (DVC can rebuild it)
	rm -rf data checkpoints/*/
