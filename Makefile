# Quick start: `make plan STACK=prod-8gpu` (offline rendering), `make test` (whole suite).
STACK ?= prod-8gpu
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= plan-out/$(STACK)
# vLLM runs its own argument parser on the CPU for the flag checks.
export VLLM_TARGET_DEVICE := cpu
# The CPU torch wheel may lie in a local wheel folder; pip finds it there when present.
PIP_FIND_LINKS_DIR := $(wildcard /opt/wheels)
PIP := $(PY) -m pip install --disable-pip-version-check -q $(if $(PIP_FIND_LINKS_DIR),--find-links $(PIP_FIND_LINKS_DIR))

.PHONY: plan test lint capacity scaling clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PIP) -r requirements-dev.txt
	# torchvision/torchaudio/torchcodec break vLLM's import beside a CPU torch, and the
	# flag checks need none of them.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

plan: $(VENV)/.runtime ## Render a stack offline: summary on stdout, manifests in plan-out/<stack>
	$(PY) -m ops plan --stack $(STACK) --out $(OUT)

test: $(VENV)/.dev ## The whole test suite, vLLM flag checks included
	$(PY) -m pytest -q

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

capacity: $(VENV)/.runtime ## Capacity table for every GPU type and profile
	$(PY) -m ops.capacity_report

scaling: $(VENV)/.runtime ## The stack's scaling policy simulated on traffic traces, with its checks
	$(PY) -m ops.scaling_sim --stack $(STACK)

clean:
	rm -rf $(VENV) plan-out .pytest_cache
