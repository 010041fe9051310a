# hostwarden: reliability tests and benchmarks (plain make; see docs/reliability.md for what each proves).
#
#   make reliability        fast fault / fuzz / security tests (also part of the default pytest run), ~6 min
#   make reliability-slow   the same with 10x fuzz budgets, the minutes-long pauses and the 200-kill runs against
#                           the webhook receiver, the local store, Redmine and RT (HOSTWARDEN_SLOW=1)
#   make load               /metrics under wrk for 60 s: 10,000 series, 1,000 rules (Debian package wrk)
#   make soak               100,000 cycles of series churn in accelerated time, in-process (~15 min)
#   make bench              load + soak + the comparison benchmarks (collect, rules, detect)
#   make deb                hostwarden_<version>_<arch>.deb (dpkg-deb; DEB_VERSION=, DEB_OUTDIR= override)
#
# Figures land in build/ (git-ignored): reliability.jsonl, load.json, soak.json, *.txt.
# Everything listens on 127.0.0.1 only.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PY ?= .venv/bin/python
BUILD ?= build
PYTEST_ARGS ?=

.PHONY: lint-imports help deb reliability reliability-slow load soak bench bench-collect bench-rules bench-detect

help:
	@sed -n 's/^#   make /make /p' Makefile

$(BUILD):
	mkdir -p $(BUILD)

reliability: | $(BUILD)
	rm -f $(BUILD)/reliability.jsonl
	HOSTWARDEN_RELIABILITY_REPORT=$(BUILD)/reliability.jsonl $(PY) -m pytest tests/reliability -q -rxX $(PYTEST_ARGS)

reliability-slow: | $(BUILD)
	rm -f $(BUILD)/reliability-slow.jsonl
	HOSTWARDEN_SLOW=1 HOSTWARDEN_RELIABILITY_REPORT=$(BUILD)/reliability-slow.jsonl \
		$(PY) -m pytest tests/reliability -q -rxX $(PYTEST_ARGS)
	HOSTWARDEN_SLOW=1 $(PY) -m pytest tests/integration/test_incidents_kill9.py tests/integration/test_redmine.py \
		tests/integration/test_rt.py -q -rxX -s -k "kill9 or killed_9" $(PYTEST_ARGS)

load: | $(BUILD)
	$(PY) bench/load.py --json $(BUILD)/load.json

soak: | $(BUILD)
	$(PY) bench/soak.py --json $(BUILD)/soak.json

bench-collect: | $(BUILD)
	$(PY) bench/collect.py | tee $(BUILD)/collect.txt

bench-rules: | $(BUILD)
	$(PY) bench/rules.py | tee $(BUILD)/rules.txt

bench-detect: | $(BUILD)
	$(PY) bench/detect.py | tee $(BUILD)/detect.txt

bench: load soak bench-collect bench-rules bench-detect

# The import contract (pyproject [tool.importlinter]) over a symlinked hostwarden/ view of the source folders.
lint-imports:
	rm -rf $(BUILD)/importview && mkdir -p $(BUILD)/importview/hostwarden
	for d in agent collectors rules exporters config; do ln -s $(CURDIR)/$$d $(BUILD)/importview/hostwarden/$$d; done
	PYTHONPATH=$(BUILD)/importview $(dir $(PY))lint-imports

deb:
	config/debian/build-deb.sh
