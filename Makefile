# ebft-dist: the two commands.
#   make run   installs what is missing, builds release, runs the default job under mpirun
#   make test  installs what is missing, builds, runs the whole test suite (incl. mpirun tests)
SWIFT ?= swift
BIN := .build/release/ebft-dist

.PHONY: run test deps build clean

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build -c release

# The default job: 1 learner + 2 rollout workers, the `small` preset (SmolLM2 on stdlib code).
run: build
	scripts/launch.sh 3 $(BIN) train --preset small --run-dir runs/small

# Tests run on the release build (-enable-testing keeps @testable imports working): the model
# tests do real numerical work that a debug build makes 10-50x slower.
test: deps
	$(SWIFT) build -c release -Xswiftc -enable-testing
	EBFT_DIST_BIN=$(CURDIR)/$(BIN) $(SWIFT) test -c release -Xswiftc -enable-testing --disable-swift-testing

clean:
	rm -rf .build
