# Meridian — every target does its own set-up on a fresh Debian machine (root), cheaply
# when it is already done (stamp files under .stamps/).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMPS := .stamps
CONSOLE_VENDOR := src/meridian/console/static/vendor
SYSTEM_PACKAGES := fuse3 libfuse3-dev pkg-config build-essential python3-dev python3-venv

.PHONY: all setup test soak soak-data demo bench clean

all: test

$(STAMPS)/system:
	@mkdir -p $(STAMPS)
	@if ! dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then \
	  echo ">> installing system packages: $(SYSTEM_PACKAGES)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_PACKAGES); \
	fi
	@touch $@

# The NFS and SMB gateways (docs/gateways.md) and the userspace clients their tests use.
GATEWAY_PACKAGES := nfs-ganesha nfs-ganesha-vfs samba smbclient libnfs-utils
$(STAMPS)/gateways: $(STAMPS)/system
	@if ! dpkg -s $(GATEWAY_PACKAGES) >/dev/null 2>&1; then \
	  echo ">> installing the NFS and SMB gateways: $(GATEWAY_PACKAGES)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends $(GATEWAY_PACKAGES); \
	fi
	@touch $@

$(STAMPS)/venv: $(STAMPS)/system $(CONSOLE_VENDOR)/.vendored pyproject.toml
	@echo ">> preparing $(VENV) with meridian and its test and demo dependencies"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --upgrade pip
	@$(VENV)/bin/pip install -q -e '.[test,demo]'
	@touch $@

setup: $(STAMPS)/venv

# The web console's one script library, htmx and its server-sent-events extension, from their
# npm packages (exact versions), into the package's static folder (not committed; the marker
# lives there too, so a removed folder is fetched again): browsers fetch nothing from elsewhere.
HTMX_VERSION := 2.0.11
HTMX_SSE_VERSION := 2.2.4
$(CONSOLE_VENDOR)/.vendored:
	@mkdir -p $(CONSOLE_VENDOR)
	@command -v npm >/dev/null || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm; }
	@echo ">> vendoring htmx $(HTMX_VERSION) and htmx-ext-sse $(HTMX_SSE_VERSION) from npm"
	@tmp=$$(mktemp -d) && cd $$tmp && \
	  npm pack --silent htmx.org@$(HTMX_VERSION) htmx-ext-sse@$(HTMX_SSE_VERSION) >/dev/null && \
	  tar xzf htmx.org-$(HTMX_VERSION).tgz package/dist/htmx.min.js package/LICENSE && \
	  cp package/dist/htmx.min.js $(CURDIR)/$(CONSOLE_VENDOR)/htmx.min.js && \
	  cp package/LICENSE $(CURDIR)/$(CONSOLE_VENDOR)/htmx.LICENSE && rm -rf package && \
	  tar xzf htmx-ext-sse-$(HTMX_SSE_VERSION).tgz package/dist/sse.min.js && \
	  cp package/dist/sse.min.js $(CURDIR)/$(CONSOLE_VENDOR)/sse.min.js && \
	  cd / && rm -rf $$tmp
	@touch $@

# The console's browser tests drive Debian's Chromium through its chromedriver (Selenium).
BROWSER_PACKAGES := chromium chromium-driver
$(STAMPS)/browser: $(STAMPS)/system
	@if ! dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1; then \
	  echo ">> installing the browser for the console tests: $(BROWSER_PACKAGES)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(BROWSER_PACKAGES); \
	fi
	@touch $@

test: setup $(STAMPS)/browser $(STAMPS)/gateways
	$(VENV)/bin/python -m pytest -q

# Randomized three-site runs over every operation mix and both store engines; prints every
# failing seed and ends with "soak: <runs> runs, <d> diverged, <l> lost" (non-zero unless 0, 0).
# Seeds start at FIRST_SEED (default 100): make test already runs seeds 0-99 of every mix.
# STEPS changes per run (default 60; longer runs reach chains that 60 changes seldom do).
SEEDS ?= 2000
FIRST_SEED ?= 100
STEPS ?= 60
soak: setup soak-data
	$(VENV)/bin/python scripts/soak.py --runs $(SEEDS) --first-seed $(FIRST_SEED) --steps $(STEPS)

# Random writes, truncates, reads, memory maps, posix_fallocate and renames through a real mount,
# every byte read checked against a local directory and a model (make test runs 20,000).
DATA_OPS ?= 500000
soak-data: setup
	MERIDIAN_DATA_OPS=$(DATA_OPS) $(VENV)/bin/python -m pytest -q -s --timeout=7200 \
	  tests/integration/test_data_random.py

demo: setup $(STAMPS)/gateways
	$(VENV)/bin/python scripts/demo.py

$(STAMPS)/bench-tools: $(STAMPS)/system
	@if ! command -v rclone >/dev/null || ! command -v s3fs >/dev/null; then \
	  echo ">> installing the contenders: rclone s3fs"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q rclone s3fs; \
	fi
	@touch $@

# Meridian beside rclone mount, s3fs and a local directory (one moto S3 server), then the
# figures only Meridian has: joining, pre-positioning under an Objective, sequence read-ahead,
# the API's round trip on loopback; then the single-contender scripts (the console, metadata,
# sequential I/O, visibility, the first read, the NFS/SMB gateways, undo and snapshots), so that
# one run regenerates every file under bench/results/.
bench: setup $(STAMPS)/bench-tools $(STAMPS)/browser $(STAMPS)/gateways
	$(VENV)/bin/python bench/compare_all.py
	$(VENV)/bin/python bench/smallfile_ceiling.py
	$(VENV)/bin/python bench/join.py
	$(VENV)/bin/python bench/prepositioning.py
	$(VENV)/bin/python bench/readahead.py
	$(VENV)/bin/python bench/api_roundtrip.py
	$(VENV)/bin/python bench/console_paint.py
	$(VENV)/bin/python bench/console_paint.py --files 1000000 --runs 5
	$(VENV)/bin/python bench/metadata.py
	$(VENV)/bin/python bench/seqio.py --size 512MiB --runs 4
	$(VENV)/bin/python bench/visibility.py
	$(VENV)/bin/python bench/first_read.py
	$(VENV)/bin/python bench/gateways.py
	$(VENV)/bin/python bench/undo.py
	$(VENV)/bin/python bench/snapshot_overhead.py
	$(VENV)/bin/python bench/summary.py --readme README.md

clean:
	rm -rf $(STAMPS) $(VENV) build src/*.egg-info
