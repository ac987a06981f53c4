# Related-content recommendations. `make run` and `make test` do all the set-up.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8080
STORE := model_store
CORPUS ?= wiki
WIKI_SAMPLE := enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2
PYTEST_ARGS ?=

.PHONY: help venv run test model-store clean

help:
	@echo "make run          serve on \$$PORT ($(PORT)) with the default store and an embedded Mongo-wire server"
	@echo "make test         the whole test suite"
	@echo "make model-store  (re)build the default store from gensim's Wikipedia sample"

$(VENV)/.installed: requirements.txt requirements-build.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# The default corpus: the English Wikipedia sample that ships inside gensim.
model-store: $(VENV)/.installed
	$(PY) -m function.build --out $(STORE)/$(CORPUS) \
	  --input "$$($(PY) -c 'from gensim.test.utils import datapath; print(datapath("$(WIKI_SAMPLE)"))')"

$(STORE)/$(CORPUS)/CURRENT:
	$(MAKE) model-store

run: $(VENV)/.installed $(STORE)/$(CORPUS)/CURRENT
	PORT=$(PORT) $(PY) -m function.devserver

test: $(VENV)/.installed
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

clean:
	rm -rf $(VENV) data bench/out $(STORE)/*/ .pytest_cache
