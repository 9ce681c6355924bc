# Quick start: `make plan STACK=prod-8gpu` (offline rendering), `make test` (whole suite).
STACK ?= prod-8gpu
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The independent scanner lives in its own virtualenv: its pins would clash with the project's.
CHECKOV_VENV := .venv-checkov
OUT ?= plan-out/$(STACK)
# vLLM runs its own argument parser on the CPU for the flag checks.
export VLLM_TARGET_DEVICE := cpu
# The CPU torch wheel may lie in a local wheel folder; pip finds it there when present.
PIP_FIND_LINKS_DIR := $(wildcard /opt/wheels)
# constraints.txt holds every transitive version, so a clean clone installs what the tests last ran.
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt $(if $(PIP_FIND_LINKS_DIR),--find-links $(PIP_FIND_LINKS_DIR))
# The test tier needs the CPU build of torch (pinned in requirements-dev.txt): from the local
# wheel folder when there is one, else from PyTorch's CPU index. Installed before vLLM, so pip
# keeps it instead of pulling the multi-GB CUDA build.
TORCH_CPU := $(shell grep -E '^torch==' requirements-dev.txt)+cpu
TORCH_SOURCE := $(if $(PIP_FIND_LINKS_DIR),--find-links $(PIP_FIND_LINKS_DIR),--index-url https://download.pytorch.org/whl/cpu)

.PHONY: plan test test-fast lint capacity scaling routing mutation docs chart-values chart-record clean

$(VENV)/.runtime: requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt constraints.txt $(VENV)/.runtime
	$(PY) -m pip install --disable-pip-version-check -q $(TORCH_SOURCE) $(TORCH_CPU)
	$(PIP) -r requirements-dev.txt
	# torchvision/torchaudio/torchcodec break vLLM's import beside a CPU torch, and the
	# flag checks need none of them.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements-checkov.txt
	touch $@

# BASE=<git ref>: instead, preview the upgrade from that ref to this tree (ops/upgrade.py).
plan: $(VENV)/.runtime ## Render a stack offline: summary on stdout, manifests and cold-start.svg in plan-out/<stack>
	$(PY) -m ops plan --stack $(STACK) $(if $(BASE),--base $(BASE),--out $(OUT))

# Two workers (the machines here have two cores); a module's tests stay on one worker, so its
# cached renderings are made once.
PYTEST := $(PY) -m pytest -q -n 2 --dist loadfile

test: $(VENV)/.dev $(CHECKOV_VENV)/.installed ## The whole test suite: vLLM flag checks and the checkov scan included
	CHECKOV=$(CHECKOV_VENV)/bin/checkov $(PYTEST)

test-fast: $(VENV)/.dev ## While editing: everything but vLLM's parser, checkov and the slow tier
	$(PYTEST) -m "not vllm and not checkov and not slow"

lint: $(VENV)/.dev ## ruff, and the import contracts between the packages (.importlinter)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

# Not part of `make test` or CI: it runs the fast test tier once per mutant (see README, Development).
mutation: $(VENV)/.dev ## Plant each bug of ops/mutants.toml in a copy of the tree; the fast tests must catch it
	$(PY) -m ops.mutation --jobs $(or $(JOBS),2)

capacity: $(VENV)/.runtime ## Capacity table for every GPU type and profile
	$(PY) -m ops.capacity.report

scaling: $(VENV)/.runtime ## The stack's scaling policy simulated on traffic traces, with its checks; SVGs of each trace in plan-out/<stack>
	$(PY) -m ops.scaling_sim --stack $(STACK) --out $(OUT)

routing: $(VENV)/.dev ## Router policies replayed on agent conversations through the real vllm-router: affinity, balance, prefill saved
	$(PY) -m ops.routing.report

# Needs git snapshots of the charts' repositories (CHART_SNAPSHOTS, default /work/.mirror; see ops/charts/sources.py).
chart-values: $(VENV)/.runtime ## Record each pinned chart's values keys and CRD schemas (after a chart pin bump)
	$(PY) -m ops.charts.values
	$(PY) -m ops.charts.crds

docs: $(VENV)/.dev ## Regenerate every generated block of README.md and docs/ from the commands and sources it quotes
	$(PY) -m tests.docs_blocks --write

# Not part of `make test`: needs a Helm binary and the six charts unpacked under CHARTS
# (`helm pull <repo>/<chart> --version <pin> --untar -d $(CHARTS)`, or the git source at the tag
# ops/charts/record.py names). Run it after changing any values a stack passes to a chart.
CHARTS ?= charts-src
HELM ?= helm
chart-record: $(VENV)/.runtime ## Render the pinned charts with the stacks' values into components/facts/data/chart-record/
	$(PY) -m ops.charts.record --charts $(CHARTS) --helm $(HELM)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) plan-out .pytest_cache
