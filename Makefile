# LUMA-RAG — `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help setup test lint typecheck unit bench bench-1m demo demo-check demo-time eval eval-kit eval-trust eval-trust-ltt kit clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml scripts/setup_env.sh
	bash scripts/setup_env.sh $(PYTHON) $(VENV)
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with every extra (idempotent)

lint: $(STAMP) ## ruff (lint + format check) and mypy on luma_rag/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy luma_rag

test: lint ## the full check a fresh clone must pass: lint, mypy, pytest
	$(PY) -m pytest -q

unit: $(STAMP) ## fast unit tests only
	$(PY) -m pytest -q tests/unit

bench: $(STAMP) ## 100k on 3 distributions vs HNSW, Chroma, LangChain, LlamaIndex; then maintenance
	$(PY) -m bench.run --sizes 100000
	$(PY) -m bench.maintenance

bench-1m: $(STAMP) ## benchmark at 100k and 1M items (slow, ~memory hungry; minilm stays at 100k)
	$(PY) -m bench.run --sizes 100000 1000000

demo: $(STAMP) ## the Gradio chat on 127.0.0.1:7860 over a LUMA-Shapes sample, offline (tiny models)
	$(PY) -m luma_rag.app.demo $(DEMO_ARGS)

demo-check: $(STAMP) ## ask the demo's example questions through the app; right/wrong per question
	$(PY) -m luma_rag.app.check_examples $(DEMO_ARGS)

demo-time: $(STAMP) ## start the demo on a fresh store and a free port; seconds (wall, CPU) to its first HTTP 200
	$(PY) -m luma_rag.app.time_to_serve -- --threads 1 $(DEMO_ARGS)

eval: $(STAMP) ## the paper's protocol on held-out LUMA-Shapes: tables + plots in data/eval-results/
	@test -f data/eval-images/manifest.jsonl || $(PY) -m luma_rag.datasets.shapes --out data/eval-images --n 1200 --seed 7
	@test -f data/eval-video/manifest.jsonl || $(PY) -m luma_rag.datasets.shapes --out data/eval-video --n 400 --seed 13 --video
	@test -f data/eval-audio/manifest.jsonl || $(PY) -m luma_rag.datasets.shapes --out data/eval-audio --n 1200 --seed 17 --audio
	$(PY) -m luma_rag.eval.run --data data/eval-images --video-data data/eval-video --audio-data data/eval-audio --out data/eval-results $(EVAL_ARGS)

eval-kit: $(STAMP) ## issue #12: the tiny models on a held-out corpus (seed 7331): every target, PASS/MISS
	@test -f data/eval-kit/manifest.jsonl || $(PY) -m luma_rag.datasets.shapes --out data/eval-kit --n 3000 --seed 7331
	@test -f data/eval-audio/manifest.jsonl || $(PY) -m luma_rag.datasets.shapes --out data/eval-audio --n 1200 --seed 17 --audio
	$(PY) -m luma_rag.eval.model_kit --data data/eval-kit --audio-data data/eval-audio --out data/eval-kit/report.json

eval-trust: $(STAMP) ## issue #17: the gate on three fresh held-out corpora pooled (37013, 38219, 39407; 1200 questions; session 13), then three read before (31859, 33413, 36791) pooled, ~10 min
	@for s in 37013 38219 39407 31859 33413 36791; do test -f data/eval-trust$$s/manifest.jsonl || $(PY) -m luma_rag.datasets.shapes --out data/eval-trust$$s --n 1200 --seed $$s; done
	$(PY) -m luma_rag.eval.trust --data data/eval-trust37013 data/eval-trust38219 data/eval-trust39407 --questions 400 --seed 37021 --no-calibration --no-legacy --out data/eval-trust-fresh.json $(EVAL_ARGS)
	$(PY) -m luma_rag.eval.trust --data data/eval-trust31859 data/eval-trust33413 data/eval-trust36791 --questions 400 --seed 31867 --no-calibration --no-legacy --out data/eval-trust-read.json $(EVAL_ARGS)

eval-trust-ltt: $(STAMP) ## issue #17: the fresh corpus 14813 with its val-split Learn-then-Test calibrations (alpha 0.05, delta 0.1; the README block), ~40 min on a loaded 2-core machine
	@test -f data/eval-trust14813/manifest.jsonl || $(PY) -m luma_rag.datasets.shapes --out data/eval-trust14813 --n 1200 --seed 14813
	$(PY) -m luma_rag.eval.trust --data data/eval-trust14813 --questions 400 --seed 14821 --alpha 0.05 --delta 0.1 --no-legacy --out data/eval-trust14813/report-ltt.json $(EVAL_ARGS)

kit: $(STAMP) ## issue #12: generate the training corpora and train the whole tiny model kit into data/kit (both cores, ~1 h; kit.json: times)
	$(PY) -m luma_rag.training.kit --data data/kit-corpora --out data/kit $(KIT_ARGS)

clean: ## remove the environment and generated files
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench/results
