# cea — one entry point for install, test, lint and release chores.
# Every install path uses requirements.lock (hashed, --no-deps): nothing floats.
# torch is installed first and separately: its build is platform specific (CPU here, CUDA on
# GPU hosts), so it stays out of the hashed lock and is constrained by a range in pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
TORCH_SPEC ?= torch==2.13.0
# Extra pip flags for torch (e.g. TORCH_PIP_FLAGS="--index-url https://download.pytorch.org/whl/cu128").
TORCH_PIP_FLAGS ?=
PIP := $(PY) -m pip --disable-pip-version-check --no-input
OFFLINE_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
TEST_CMD := $(OFFLINE_ENV) $(PY) -m pytest --cov=cea --cov-report=term-missing:skip-covered --cov-fail-under=85 -q

.PHONY: install wordnet demo test test-fast lint format lock clean bench sbom audit licenses

$(PY):
	$(PYTHON) -m venv $(VENV)

# Runtime + dev tools, all from the lock; then the project itself (editable, no deps).
install: $(PY)
	$(PIP) install -q $(TORCH_PIP_FLAGS) "$(TORCH_SPEC)"
	$(PIP) install -q --require-hashes --no-deps -r requirements.lock
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PIP) check
	@$(MAKE) --no-print-directory wordnet
	@$(BIN)/cea --version

# WordNet for the WordNet/EDA augmenters (optional: without it they are listed unavailable).
# Debian's dict files (apt-get, as root), copied into .venv/nltk_data where NLTK looks.
WORDNET_DEBS := wordnet-base wordnet-sense-index
wordnet:
	@if [ ! -f /usr/share/wordnet/data.noun ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends $(WORDNET_DEBS) >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1; apt-get install -y -q --no-install-recommends $(WORDNET_DEBS) >/dev/null 2>&1; } || \
	  echo "note: apt-get could not install $(WORDNET_DEBS)"; \
	fi
	@$(PY) -m cea.augment.wordnet

# The main job on the bundled sample data, offline.
demo:
	$(OFFLINE_ENV) $(BIN)/cea train --config default

test:
	$(TEST_CMD)

test-fast:
	$(OFFLINE_ENV) $(PY) -m pytest -q -m "not slow" -x

lint:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format:
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# Regenerate the hashed lock (needs the network to the package index).
lock:
	command -v uv >/dev/null || $(PIP) install -q uv==0.13.9
	echo "torch==2.13.0+cpu" > .lock-overrides.txt
	$$(command -v uv || echo $(BIN)/uv) pip compile pyproject.toml requirements-build.in --extra dev --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 -f /opt/wheels \
	  --overrides .lock-overrides.txt --no-emit-package torch --no-header -o requirements.lock
	rm -f .lock-overrides.txt

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .coverage

# CycloneDX 1.6 SBOM of the locked environment (offline, reproducible); validated by `cea audit sbom`.
sbom:
	$(BIN)/cea audit sbom --write-sbom SBOM.json --quiet || true
	$(BIN)/cea audit sbom

# The offline audit profile (no network): SAST, SBOM + drift, policy. `vulns` needs the
# network (pip-audit) or an offline OSV database: `cea audit vulns --osv-db osv-pypi.zip`.
audit:
	$(BIN)/cea audit --checks sast,sbom,licenses,policy

# THIRD_PARTY_LICENSES.md from the lock's environment (also carried in SBOM.json).
licenses:
	$(BIN)/cea audit licenses --write-third-party THIRD_PARTY_LICENSES.md

bench:
	$(OFFLINE_ENV) $(PY) -m pytest benchmarks -q --benchmark-only -p no:cacheprovider
