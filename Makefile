# aijack_lab: `make lab` opens the workbench, `make test` runs every test and notebook.
# Both do the whole set-up on a fresh Debian machine and are quick when it is already done.

VENV        ?= .venv
PYTHON_SYS  ?= python3
PY          := $(VENV)/bin/python
PIP         := $(PY) -m pip --disable-pip-version-check
TORCH_PIN   ?= torch==2.13.0
EXTRAS      ?= lab,parallel,mpi,test
LAB_ARGS    ?=
PYTEST_ARGS ?=
NBVAL_TIMEOUT ?= 600
APT_PACKAGES := libgmp-dev pkg-config cmake g++
# the browser tests drive Debian's Chromium through Playwright (never `playwright install`)
APT_TEST_PACKAGES := chromium fonts-dejavu-core
PORT        ?= 8866
CLASSROOM_ARGS ?=
ROOT_FLAG   := $(if $(filter 0,$(shell id -u)),--allow-root,)
SUDO        := $(if $(filter 0,$(shell id -u)),,sudo)
# one torch/BLAS thread: on 2 cores a second busy process slows multi-threaded small ops 10-100x
TEST_ENV    := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0

.PHONY: setup system system-test build test test-fast lab classroom readme cpp-check clean

setup: system $(VENV)/.deps-stamp build

define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "apt-get install:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi
endef

system:
	$(call apt_install,$(APT_PACKAGES))

system-test:
	$(call apt_install,$(APT_TEST_PACKAGES))

$(VENV)/.torch-stamp:
	$(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU build first and explicitly: a plain `torch` requirement would pull a multi-GB CUDA build
	$(PIP) install -q "$(TORCH_PIN)"
	touch $@

$(VENV)/.deps-stamp: $(VENV)/.torch-stamp pyproject.toml
	$(PIP) install -q "scikit-build-core>=0.10" "pybind11>=2.12" ninja
	flock /tmp/aijack_lab_build.lock $(PIP) install -q --no-build-isolation -e ".[$(EXTRAS)]" "$(TORCH_PIN)"
	touch $@

# Incremental rebuild of the C++ core into the editable install; the lock serialises concurrent builds.
build: $(VENV)/.deps-stamp
	flock /tmp/aijack_lab_build.lock $(PIP) install -q --no-build-isolation --no-deps -e .

test: setup system-test
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS) tests
	$(TEST_ENV) $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=$(NBVAL_TIMEOUT) -p no:cacheprovider notebooks

test-fast: build
	$(TEST_ENV) $(PY) -m pytest -x -q -m "not slow and not browser" $(PYTEST_ARGS) tests

lab: setup
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) $(LAB_ARGS) notebooks/00_gallery.ipynb

# The gallery as a web app for a class: widgets only, no code (Voila).
classroom: setup
	$(VENV)/bin/voila notebooks/00_gallery.ipynb --port=$(PORT) $(CLASSROOM_ARGS)

# Regenerates the README's algorithm table from the panel registry.
readme: build
	$(PY) -m aijack_lab.widgets.catalog --write-readme README.md

# Syntax-check one C++ file against the core's includes before dropping it into cpp/src/.
cpp-check:
	g++ -std=c++17 -fsyntax-only -Wall -Wextra -Icpp/include $$($(PY) -m pybind11 --includes) $$(pkg-config --cflags gmp) $(FILE)

clean:
	rm -rf build _skbuild .pytest_cache
