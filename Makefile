# Entry points for a fresh machine (see README, Quickstart):
#   make chat   set up, then serve the chat on http://127.0.0.1:7860 (indexes documents/ first)
#   make test   set up with the test extras (and Debian's chromium), run the whole test suite
#   make ask    set up, answer one question on the command line
# pip, not uv/poetry: only pip sees the CPU torch wheel this project pins (see README).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
QUESTION ?= Qui domine la production de puces mémoire ?
PORT ?= 7860

.PHONY: setup setup-test chromium tesseract llama chat ask test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup: $(BIN)/python
	-@$(MAKE) --no-print-directory tesseract   # OCR of scans and images; without it they are listed, not indexed
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .

setup-test: $(BIN)/python chromium tesseract
	$(BIN)/pip install --quiet torch==2.13.0
	@$(BIN)/python -c "import llama_cpp" 2>/dev/null || $(MAKE) --no-print-directory llama
	$(BIN)/pip install --quiet -e '.[test]'

# The LLM tests' server compiles llama.cpp. Built for this CPU (-march=native) on an Intel CPU with
# AMX, its AMX kernels crash on the first token (ggml-org/llama.cpp#20824): an AVX2 build runs on
# any x86-64 of the last decade. No pip cache, which may hold a wheel built for the CPU.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
llama: $(BIN)/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --no-cache-dir 'llama-cpp-python[server]>=0.3'

# The browser tests drive Debian's chromium (Playwright's own download cannot work offline).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "The browser tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

# OCR of scanned PDF pages and images (Debian's Tesseract, French and English).
tesseract:
	@command -v tesseract >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng >/dev/null; \
	  else echo "OCR needs Tesseract: sudo apt-get install tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng" >&2; exit 1; fi; }

chat: setup
	$(BIN)/tpdqa serve --host 127.0.0.1 --port $(PORT)

ask: setup
	$(BIN)/tpdqa ask "$(QUESTION)"

test: setup-test
	$(BIN)/python -m pytest

clean:
	rm -rf index eval-out test-artifacts
