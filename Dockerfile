# The related-content function as one image: Heroku, Cloud Run, Knative, a laptop.
#
#   make image                 # builds the default store first, then this file
#   docker run --rm -e PORT=8080 -p 8080:8080 localhost/related-content
#
# Configuration is the environment only (README, "Configuration"): PORT (read
# by functions-framework itself), MONGODB, CLICK_SECRET, DEFAULT_CORPUS,
# MODEL_STORE, WORKERS, THREADS, ...
#
# BASE_IMAGE: any Debian-like image with python3 (3.11, the version the pins
# are for) and its venv module: the official slim image by default; CI uses a
# local debootstrap of bookworm (no image registry there). Nothing here
# assumes where python lives: `python3 -m venv` and the venv's own binaries.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- pip settings for the stages that install ---------------------------------
FROM ${BASE_IMAGE} AS installer
# Plain PyPI through the system CA bundle, whatever pip config the host has;
# wheels only (there is no compiler in the image, and none is needed).
ENV PIP_CONFIG_FILE=/dev/null \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=60 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8

# ---- stage 1: the serving virtualenv (requirements.txt only) -----------------
FROM installer AS venv
COPY requirements.txt /tmp/requirements.txt
# pip and setuptools leave afterwards (serving imports neither), and so do
# the third-party test suites (numpy's alone is 17 MB).
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && find /opt/venv/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} +

# ---- stage 2: the model store, live versions only -------------------------------
# `make image` builds the default store first and the context brings it:
# model_store/<corpus>/CURRENT and up to --keep-versions versions, of which
# the image needs the one CURRENT names. A context without any store (a git
# push to Heroku, `gcloud run deploy --source .`: stores are not committed)
# gets the default one built here, as `make model-store` does.
FROM installer AS store
COPY requirements.txt requirements-build.txt /tmp/
COPY function/ /build/function/
COPY model_store/ /store/
RUN set -e; cd /store; \
    if ! ls -d */CURRENT >/dev/null 2>&1; then \
      echo "model_store/ has no built store: building the default one (wiki, from gensim's sample)"; \
      python3 -m venv /tmp/builder; \
      /tmp/builder/bin/pip install --only-binary=:all: -r /tmp/requirements-build.txt; \
      sample=$(cd /build && /tmp/builder/bin/python -c \
        'from function.sources import wiki_sample_path; print(wiki_sample_path())'); \
      (cd /build && /tmp/builder/bin/python -m function.build --input "$sample" --out /store/wiki); \
      rm -rf /tmp/builder; \
    fi; \
    for current in */CURRENT; do \
      corpus=${current%/CURRENT}; live=$(cat "$current"); \
      [ -f "$corpus/$live/manifest.json" ] || { echo "model_store/$corpus: CURRENT names $live, which has no manifest.json" >&2; exit 1; }; \
      for version in "$corpus"/*/; do \
        [ "${version%/}" = "$corpus/$live" ] || rm -rf "$version"; \
      done; \
    done; \
    find /store -name skipped.jsonl -delete; rm -f README.md; chmod -R a+rX /store

# ---- stage 3: the code, compiled -------------------------------------------------
# checked-hash: the .pyc files stay valid whatever mtimes the copies get.
FROM ${BASE_IMAGE} AS code
COPY function/ /app/function/
RUN python3 -m compileall -q --invalidation-mode checked-hash /app/function

# ---- the image ---------------------------------------------------------------------
FROM ${BASE_IMAGE}
# PATH in full: an imported base image may not define one.
# PYTHONUNBUFFERED: log lines reach the platform as they are written.
# PYTHONDONTWRITEBYTECODE: everything is compiled at build time, and the
# serving user cannot write next to the code anyway.
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8080
# A fixed numeric non-root user, so platforms that check runAsNonRoot can
# tell from the image. It owns nothing in /app (COPY makes root-owned files
# whatever USER says: code and store are read-only to it), only its home,
# where nothing is written (gunicorn's control socket is off, so a read-only
# root filesystem serves as well).
RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid app --create-home --shell /usr/sbin/nologin app
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# Exec form, so gunicorn (inside functions-framework) is PID 1 and gets
# SIGTERM itself: it stops taking connections, lets requests finish, and its
# workers flush their events (EVENT_FLUSH_SECONDS) before exiting. The port
# is not on this line: functions-framework reads PORT from the environment.
CMD ["functions-framework", "--source", "function/main.py", "--target", "handle"]
# The content last, from the least to the most often changing: dependencies,
# store, code. (The settings above come first because every instruction is a
# layer commit, and some storage drivers, vfs in CI, copy the whole tree each
# time: cheap while the image is still the base.)
COPY --from=venv /opt/venv /opt/venv
COPY --from=store /store/ /app/model_store/
COPY --from=code /app/function/ /app/function/
