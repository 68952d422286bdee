# Two commands do all the set-up: `make run` and `make test` create .venv when it is missing,
# install textflow with the full lock (constraints.txt), then run the pipeline or the tests.
VENV ?= .venv
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test setup bench bench-seq2seq bench-torch image image-gpu clean
SHARED_DATA ?= ../shared/data

run: $(STAMP)
	$(VENV)/bin/textflow run $(ARGS)

# One pytest-xdist worker per core, a test file at a time (its module-scoped pipeline runs happen
# once), the longest files first (tests/conftest.py). TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

setup: $(STAMP)

# Benchmarks print one JSON line each; they are run by hand, never by the tests.
bench: $(STAMP)
	$(VENV)/bin/python -m bench.charlm --family transformer --data $(SHARED_DATA)/tinyshakespeare.txt --preset cpu-small
	$(VENV)/bin/python -m bench.charlm --family rnn --data $(SHARED_DATA)/tinyshakespeare.txt --preset cpu-small
	$(VENV)/bin/python -m bench.hvae --data $(SHARED_DATA)/tinyshakespeare.txt
	$(VENV)/bin/python -m bench.input_pipeline --data $(SHARED_DATA)/sst2_train.tsv
	$(VENV)/bin/python -m bench.cpu_kernels

# German-to-English on Multi30k, each family trained for at most 30 minutes (about 70 minutes in all).
SEQ2SEQ_ARGS ?= --precision mixed_bfloat16
bench-seq2seq: $(STAMP)
	$(VENV)/bin/python -m bench.seq2seq --family transformer --data $(SHARED_DATA)/multi30k --preset cpu $(SEQ2SEQ_ARGS)
	$(VENV)/bin/python -m bench.seq2seq --family rnn --data $(SHARED_DATA)/multi30k --preset cpu $(SEQ2SEQ_ARGS)

# The PyTorch references (nn.LSTM for rnn, nanoGPT's recipe for transformer), in their own environment (CPU wheel).
TORCH_VENV ?= .venv-torch
bench-torch:
	@test -x $(TORCH_VENV)/bin/python || python3 -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install --quiet torch==2.13.0 numpy
	$(TORCH_VENV)/bin/python bench/torch_charlm.py --family gpt --data $(SHARED_DATA)/tinyshakespeare.txt
	$(TORCH_VENV)/bin/python bench/torch_charlm.py --family lstm --data $(SHARED_DATA)/tinyshakespeare.txt

$(STAMP): pyproject.toml constraints.txt
	@test -x $(VENV)/bin/python || "$$(scripts/find-python310)" -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip==24.2 setuptools==75.1.0 wheel==0.44.0
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

# The pipeline image for Kubeflow (see the Dockerfile); IMAGE=registry/textflow:tag make image.
IMAGE ?= textflow:latest
DOCKER ?= docker
image:
	@command -v $(DOCKER) >/dev/null || { echo "make image: $(DOCKER) not found; build the Dockerfile where Docker runs"; exit 1; }
	$(DOCKER) build -t $(IMAGE) .

image-gpu:
	@command -v $(DOCKER) >/dev/null || { echo "make image-gpu: $(DOCKER) not found; build the Dockerfile where Docker runs"; exit 1; }
	$(DOCKER) build --build-arg BASE=ubuntu:22.04 --build-arg VARIANT=gpu -t $(IMAGE)-gpu .

clean:
	rm -rf $(VENV) .venv-torch workspace serving
