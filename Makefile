# Two commands do all the set-up: `make run` and `make test` create .venv when it is missing,
# install textflow with the full lock (constraints.txt), then run the pipeline or the tests.
VENV ?= .venv
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test setup clean

run: $(STAMP)
	$(VENV)/bin/textflow run $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(VENV)/bin/python || "$$(scripts/find-python310)" -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip==24.2 setuptools==75.1.0 wheel==0.44.0
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

clean:
	rm -rf $(VENV) workspace serving
