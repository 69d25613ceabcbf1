# refvos: `make test` and `make demo` set everything up on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv test test-fast lint wheel-check demo bench browser clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Debian's Chromium for the browser test of `refvos serve` (skipped when already there).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium"; }

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# OpenVINO's tests run in a pytest process of their own: a process running OpenVINO's threads
# does not survive a fork (the other tests fork DataLoader workers and servers)
test: venv browser lint
	$(BIN)/python -m pytest -q -m "not openvino"
	$(BIN)/python -m pytest -q -m openvino

# sdist + wheel, twine check, the wheel in a fresh venv over this one (also run by `make test`,
# as tests/tools/test_wheel_check.py)
wheel-check: venv
	$(BIN)/python tools/wheel_check.py

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow and not browser and not openvino"

demo: venv
	$(BIN)/refvos demo --out demo_out

bench: venv
	$(BIN)/python -m benchmarks.run --out bench_out/bench.json $$(test -f demo_out/model.pth && echo --demo-dir demo_out)
	$(BIN)/python benchmarks/video_cli.py --out bench_out/video_cli.json

clean:
	rm -rf demo_out bench_out .pytest_cache
