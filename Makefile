# Everything a fresh machine needs: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,neural]'
	# The Smart Turn v3.2 end-of-turn model is a file inside the pipecat-ai wheel; only the file
	# is read (docs/turn_detection.md), so pipecat's own dependencies are not installed.
	$(PY) -m pip install --quiet --no-deps 'pipecat-ai>=1.14,<2'
	$(PY) -m pip install --quiet --no-deps 'resemblyzer==0.1.4'  # speaker encoder weights only
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bargein demo

lint: $(STAMP)
	$(VENV)/bin/ruff check bargein tests bench
	# flake8-async for the trio rules ruff lacks (cleanup awaits must be shielded and bounded,
	# no return/await misuse in nurseries). Its opt-in 9xx checkpoint rules are not used: engine
	# sinks checkpoint only when cancelled, on purpose, and Quart SSE bodies are async generators.
	$(VENV)/bin/flake8-async --enable=ASYNC102,ASYNC103,ASYNC104,ASYNC120,ASYNC121,ASYNC122,ASYNC123 $$(find bargein -name "*.py")

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: lint typecheck
	$(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/bargein bench runtime --json
	$(VENV)/bin/bargein bench dsp --json
	$(VENV)/bin/bargein bench engines --json

clean:
	rm -rf $(VENV) build *.egg-info
