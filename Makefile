# Related-content recommendations. `make run` and `make test` do all the set-up.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8080
STORE := model_store
# The store make builds and `make clean` removes: a fixed name, never the environment's (an exported
# CORPUS=site had made `make clean` delete model_store/site and `make run` build the sample into it)
WIKI := $(STORE)/wiki
PYTEST_ARGS ?=

.PHONY: help venv run test model-store any-store clean

help:
	@echo "make run             serve on \$$PORT ($(PORT)) with the default store and an embedded Mongo-wire server"
	@echo "make test            the whole test suite"
	@echo "make model-store     (re)build the default store from gensim's Wikipedia sample"
	@echo "make eval-extract    extraction F1 on ../shared/bench/extraction-dev (EXTRACTION_DEV_DIR) among nine peers"
	@echo "make eval-extract-worst  extraction time on hostile pages (floods of elements, attributes), against the seed"
	@echo "make eval-relevance  P@5 / nDCG@10 of each engine configuration"
	@echo "make bench           performance against the seed's way of serving (~10 min; first use builds the stores: ~15 min more)"
	@echo "make bench-quick     a small version of it, under two minutes"
	@echo "make image           the container image; make container-test builds and checks it with podman"
	@echo "make heroku-push / heroku-release HEROKU_APP=name   deploy with Heroku's container registry"
	@echo "make venv            only .venv, from the pinned requirements"
	@echo "make clean           remove .venv, bench/out and model_store/wiki (keeps data/ and other stores)"

$(VENV)/.installed: requirements.txt requirements-build.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# The default corpus: the English Wikipedia sample that ships inside gensim.
model-store: $(VENV)/.installed
	$(PY) -m function.build --out $(WIKI) \
	  --input "$$($(PY) -c 'from function.sources import wiki_sample_path; print(wiki_sample_path())')"

$(WIKI)/CURRENT:
	$(MAKE) model-store

# Any built store will do (the image serves every one): the sample is built only when there is none.
any-store:
	@ls $(STORE)/*/CURRENT >/dev/null 2>&1 || $(MAKE) model-store

# the sample is built only for the function's own default: a MODEL_STORE of the caller's (a site's stores)
# had had it built all the same, 8.5 s of a first run spent on a store the function did not look at
run: $(VENV)/.installed $(if $(MODEL_STORE),,$(WIKI)/CURRENT)
	PORT=$(PORT) $(PY) -m function.devserver

test: $(VENV)/.installed
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

# data/ (make run's events and click key) and stores other than wiki are not removed
clean:
	rm -rf $(VENV) bench/out $(WIKI) .pytest_cache

# -- extraction quality: our extractor and the seed's jusText call on the 91 dev pages of
# -- ../shared/bench/extraction-dev (EXTRACTION_DEV_DIR), scored among the nine peers by score.py
.PHONY: eval-extract eval-extract-worst
eval-extract: $(VENV)/.installed
	$(PY) bench/eval_extract.py
# -- what hostile pages cost it (bench/extract_worst.py): ours against the seed's jusText call
eval-extract-worst: $(VENV)/.installed
	$(PY) bench/extract_worst.py

# -- relevance (bench/relevance.py): builds a store per configuration from the data
# -- that ships inside gensim, prints P@5 / nDCG@10 per engine, writes bench/out/relevance.json
.PHONY: eval-relevance
eval-relevance: $(VENV)/.installed
	$(PY) bench/relevance.py
# -- end of relevance

# -- performance (bench/, issue #4): our way of serving against the seed's, in one run. Builds and caches
# -- synthetic stores of 10k, 100k and 1M documents in bench/cache/ on first use (1M: a few GB, ~20 min
# -- on an idle 2-core machine), prints the tables and writes bench/results.json (keys in bench/README.md).
# -- wrk is used for the throughput figure when installed (apt-get install wrk), else a Python client.
.PHONY: bench bench-quick
bench: $(VENV)/.installed
	$(PY) -m bench.run
bench-quick: $(VENV)/.installed
	$(PY) -m bench.run --quick --out bench/out/results-quick.json
# -- end of performance

# -- container image and deploy (issue #3): Dockerfile, heroku.yml, README "Container and deploy".
# -- make image: the default store, then the image $(IMAGE) with $(CONTAINER) (docker when a Docker engine
# -- answers, else podman as CI runs it; BASE_IMAGE=... overrides the Dockerfile's python:3.11-slim-bookworm).
# -- make container-test (CI): podman on a debootstrap'ed bookworm base made once (no image registry is
# -- reachable), then tests/container/check.py runs the image on a random PORT and checks it from outside.
# -- make heroku-push / heroku-release HEROKU_APP=name: Heroku's container registry flow (needs docker).
IMAGE ?= localhost/related-content
BASE_IMAGE ?=
HEROKU_APP ?=
# podman's own choice of storage driver unless set: the one its storage was first made with (a
# --storage-driver that differs is refused, "database configuration mismatch": a machine where
# anyone had run a plain `podman` failed every container-test), else overlay where it works, else vfs
PODMAN_STORAGE ?=
PODMAN := podman $(if $(PODMAN_STORAGE),--storage-driver=$(PODMAN_STORAGE) )--runtime runc --cgroup-manager=cgroupfs
ifndef CONTAINER  # asked once: a deferred ?= would run docker info at every use
CONTAINER := $(shell docker info >/dev/null 2>&1 && echo docker || echo "$(PODMAN)")
endif
HOST_CA := /etc/ssl/certs/ca-certificates.crt
# podman builds reach PyPI the way the host does: the host's network and CA bundle (docker's default works)
BUILD_FLAGS ?= $(if $(findstring podman,$(CONTAINER)),--network=host $(if $(wildcard $(HOST_CA)),-v $(HOST_CA):$(HOST_CA):ro))
PYBASE := localhost/pybase:bookworm
PYBASE_PATH := /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# On every image a build makes, the intermediate ones too (podman labels each layer): what lets
# container-test prune its own leftovers and nobody else's. With vfs each layer is a full copy of the
# tree, so a build leaves ~2 GB behind; CI machines keep their storage (one filled its disk after ~15 runs).
BUILD_LABEL := related-content.build

.PHONY: image container-test heroku-push heroku-release

image: any-store
	$(CONTAINER) build $(BUILD_FLAGS) --label $(BUILD_LABEL)=1 $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t $(IMAGE) .
	$(CONTAINER) image ls $(IMAGE)

container-test: $(VENV)/.installed
	$(PODMAN) image exists $(PYBASE) || { \
	  root=$$(mktemp -d /var/tmp/pybase.XXXXXX) && chmod 755 $$root; \
	  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm $$root \
	    >$$root.log 2>&1 || { tail -20 $$root.log; rm -rf $$root $$root.log; exit 1; }; \
	  rm -rf $$root/var/cache/apt/archives/*.deb $$root/var/lib/apt/lists/* \
	    $$root/usr/share/doc/* $$root/usr/share/man/* $$root/usr/share/locale/*; \
	  tar -C $$root -c . | $(PODMAN) import --change 'ENV PATH=$(PYBASE_PATH)' --change 'ENV LANG=C.UTF-8' \
	    --change 'CMD ["python3"]' - $(PYBASE) >/dev/null; status=$$?; \
	  rm -rf $$root $$root.log; exit $$status; }
	$(PODMAN) image prune --force --filter label=$(BUILD_LABEL) >/dev/null
	$(MAKE) image CONTAINER="$(PODMAN)" BASE_IMAGE=$(PYBASE)
	$(PY) tests/container/check.py --image $(IMAGE) --engine "$(PODMAN)"; status=$$?; \
	  $(PODMAN) image prune --force --filter label=$(BUILD_LABEL) >/dev/null; exit $$status

heroku-push: any-store
	@test -n "$(HEROKU_APP)" || { echo "set HEROKU_APP=<your app>: make heroku-push HEROKU_APP=..."; exit 2; }
	heroku container:push web --app $(HEROKU_APP)

heroku-release:
	@test -n "$(HEROKU_APP)" || { echo "set HEROKU_APP=<your app>: make heroku-release HEROKU_APP=..."; exit 2; }
	heroku container:release web --app $(HEROKU_APP)
# -- end of container image and deploy
