# Everything a fresh machine needs, in one word each:
#   make test   install (apt + pip), then run the test suite (the command CI runs)
#   make demo   install, then train LeNet-5 on Fashion-MNIST, evaluate it and export it
#   make bench  install with the benchmark extras, then run the benchmarks
PYTHON ?= python3
RUN ?= runs/lenet5
# Test workers (pytest-xdist): two suit the 2-core machines CI and we use; each test
# module runs whole on one worker (--dist loadfile), so its fixtures are made once.
JOBS ?= 2

.PHONY: install test test-all demo bench

install:
	bash scripts/install.sh

test: install
	$(PYTHON) -m pytest -q -m "not slow" -n $(JOBS) --dist loadfile; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-all: install
	$(PYTHON) -m pytest -q -n $(JOBS) --dist loadfile

demo: install
	$(PYTHON) -m apps.classify train --model lenet5 --dataset fashion_mnist \
		--model-option activation=relu --model-option pool_type=max \
		--augment flip --learning-rate 0.002 --epochs 20 --seed 0 --output $(RUN)
	$(PYTHON) -m apps.classify evaluate --model-path $(RUN)/model.keras \
		--dataset fashion_mnist
	$(PYTHON) -m apps.classify export --model-path $(RUN)/model.keras \
		--name lenet5

bench:
	EXTRAS=test,export,bench bash scripts/install.sh
	for script in benchmarks/*.py; do $(PYTHON) $$script || exit 1; done
