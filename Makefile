# ct-pipeline: every target creates .venv first when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9

# Runtime state goes to CT_DATA_DIR (default ./data); `demo` and `up` derive Airflow's environment
# from it (ct_operators/local_airflow.py), tests make their own temporary ones.
export PYTHONPATH := $(CURDIR)/plugins:$(PYTHONPATH)

.PHONY: venv test demo up bench lock check clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	@echo "installing pinned dependencies into .venv (uv, constraints.txt)..."
	@time $(VENV)/bin/uv pip install -q --compile-bytecode -p $(PY) -r requirements.txt -c constraints.txt
	@$(VENV)/bin/uv pip install -q -p $(PY) --no-deps -e .  # ct_operators as a provider (iris connection type)
	@touch $@

test: venv
	$(PY) -m pytest

demo: venv
	$(PY) -m ct_operators demo

up: venv
	$(PY) -m ct_operators up

bench: venv
	$(PY) -m bench

# Regenerate the lock of the fully resolved dependency set (Airflow's constraint files are not reachable here).
lock: venv
	$(VENV)/bin/uv pip compile requirements.txt -p 3.11 -o constraints.txt

check: venv
	$(PY) ../shared/tools/check_layers.py .

clean:
	rm -rf $(or $(CT_DATA_DIR),$(CURDIR)/data)
