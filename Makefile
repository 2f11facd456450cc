# The two commands a new user needs: `make demo` and `make test`.
# Everything is installed into .venv from requirements.txt; a stamp file
# makes the second run skip the install.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint audit bench install clean-var proto images deploy-smoke

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

## Prepare data, install the released models (models/), index the demo catalog, serve on :8000.
demo: $(STAMP)
	$(BIN)/eyepic demo

## All tests (slow ones included), as CI runs them.
test: $(STAMP)
	$(BIN)/python -m pytest -q

## ruff, import-linter's layer contracts (pyproject.toml [tool.importlinter]), bandit
## (pyproject.toml [tool.bandit]; each finding fixed or answered by a "# nosec" with its reason), as CI runs them.
## pip-audit is `make audit`, not part of lint: its advisory data (pypi.org's JSON API, OSV) cannot be
## reached from this project's CI, where every package would come back "could not be audited".
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/bandit -q -c pyproject.toml -r .

## Known vulnerabilities in the installed environment (PyPI's advisory data: needs pypi.org's JSON API).
## Strict: a package that cannot be audited fails too. A finding is fixed by raising its pin, or
## answered in pip-audit.ignore (its id and why it does not apply); nothing is skipped silently.
AUDIT_IGNORES := $(shell sed -e 's/\#.*//' -e '/^[[:space:]]*$$/d' -e 's/^[[:space:]]*/--ignore-vuln /' pip-audit.ignore)
audit: $(STAMP)
	$(BIN)/pip-audit --strict --skip-editable --progress-spinner off $(AUDIT_IGNORES)

## A search's time by Analyzer stage (bench/analyzer_stages.py), then search under load through
## gunicorn, in-process models vs the model server (bench/load.py): var/reports/bench_analyzer_stages.json,
## bench_load.json and .png. Needs exported models (`eyepic release install`).
bench: $(STAMP)
	$(BIN)/python -m bench.analyzer_stages
	$(BIN)/python -m bench.load

clean-var:
	rm -rf var

## Regenerate the gRPC API's Python stubs (eyepic/v1/) from proto/; they are committed.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. \
		proto/eyepic/v1/recommender.proto

## Container images (docker/Dockerfile: api, model-server, indexer) from a Debian base bootstrapped
## here; sizes and build times in var/reports/images.json.
images:
	scripts/images.sh

## The dev overlay played with podman: images, `podman kube play`, a real search through the
## published port, gRPC health, teardown (docs/deploy.md). Times in var/reports/deploy_smoke.json.
deploy-smoke: $(STAMP)
	scripts/deploy_smoke.sh
