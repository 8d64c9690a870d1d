# mbk: `make demo` runs a real backup of a demo Moodle stack; `make test` runs
# every test against a real Docker engine, MariaDB and SMTP server.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN := bin
PLUGINS := mysql volume smtp s3 sftp ping

.PHONY: all build stack demo demo-down test test-unit bench clean proto

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/mbk ./cmd/mbk
	@for p in $(PLUGINS); do $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/mbk-plugin-$$p ./plugins/$$p || exit 1; done

# The engine, the base image and the demo stack (MariaDB + moodledata volume).
stack:
	chmod 600 pipelines/demo.env # it holds the demo's password: mbk refuses it readable by others
	bash scripts/stack.sh deps
	bash scripts/stack.sh engine
	bash scripts/stack.sh image
	set -a; . pipelines/demo.env; set +a; MBK_DB_PASSWORD="$$MYSQL_PASSWORD" bash scripts/stack.sh up mbk-demo

demo: build stack
	$(BIN)/mbk validate pipelines/demo.hcl
	$(BIN)/mbk run pipelines/demo.hcl
	@set -a; . pipelines/demo.env; set +a; \
	 set=$$(ls -1d "$$MBK_DEMO_ROOT"/20* | tail -n 1); \
	 echo; echo "== the new set: $$set"; ls -l "$$set"; \
	 echo; echo "== sha256sum -c SHA256SUMS"; (cd "$$set" && sha256sum -c SHA256SUMS); \
	 echo; echo "== DB_INFO.txt"; cat "$$set/DB_INFO.txt"; \
	 echo; echo "== MOODLEDATA_INFO.txt"; head -n 20 "$$set/MOODLEDATA_INFO.txt"
	@echo; echo "== mbk drill: the set restored into throwaway containers and checked"
	$(BIN)/mbk drill pipelines/demo.hcl

demo-down:
	bash scripts/stack.sh down mbk-demo

# Programs the tests run that no package provides: the S3 gateway, pinned to
# the version core/testing/storetest expects (it builds the same when missing).
.PHONY: tools
tools:
	GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install github.com/versity/versitygw/cmd/versitygw@v1.8.0

# The plugin protocol's generated code (core/internal/wire/pb) from
# mbk.proto, with pinned generators; `make test` checks it is up to date.
proto:
	bash scripts/proto.sh gen

# Everything, end to end included. Installs and starts what it needs.
test: tools
	bash scripts/stack.sh deps
	bash scripts/stack.sh engine
	bash scripts/stack.sh image
	bash scripts/proto.sh check
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...
	$(MAKE) test-faults

test-unit:
	$(GO) test -count=1 -short ./core/config/ ./core/retain/ ./core/repo/ ./core/stream/ ./core/sdk/...

# The fault suite's bounded fuzzing (TESTING.md): the pipeline loader and the
# restore path's archive reader, FUZZTIME each. The fault tests themselves
# (TestFaultSuite*) run with `go test ./...`. A longer hunt: FUZZTIME=2000000x.
# Budgets are counts of executions, not durations: Go 1.26's fuzzing coordinator
# can fail a target with a bare "context deadline exceeded" when a duration ends
# while a worker is busy (golang/go#75804, fixed in Go 1.27), which a loaded CI
# machine hit once. 20000 runs took 5-30 s per target here, with the load.
FUZZTIME ?= 20000x
.PHONY: test-faults
test-faults:
	rc=0; \
	$(GO) test -run XXX -fuzz FuzzLoad -fuzztime $(FUZZTIME) -fuzzminimizetime 2000x ./core/config/ || rc=1; \
	$(GO) test -run XXX -fuzz FuzzRestoreHost -fuzztime $(FUZZTIME) -fuzzminimizetime 2000x ./plugins/volume/ || rc=1; \
	exit $$rc

# mbk against the shell way and the floor on a deterministic Moodle-shaped site;
# appends a dated section to BENCHMARKS.md. SCALE=small|medium|large ROUNDS=3
# (command-line variables reach the script's environment). Not part of `make test`.
bench: build
	bash scripts/stack.sh deps
	bash scripts/stack.sh engine
	bash scripts/stack.sh image
	bash scripts/bench.sh run

clean:
	rm -rf $(BIN)
