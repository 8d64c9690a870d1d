# mbk: `make demo` runs a real backup of a demo Moodle stack; `make test` runs
# every test against a real Docker engine, MariaDB and SMTP server.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN := bin
PLUGINS := mysql volume smtp s3 sftp ping

.PHONY: all build stack demo demo-down test test-unit bench clean proto

all: build

# Static binaries (no cgo): the same files serve make install, the Debian
# package and the FROM-scratch image.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/mbk ./cmd/mbk
	@for p in $(PLUGINS); do CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/mbk-plugin-$$p ./plugins/$$p || exit 1; done

# make install [PREFIX=/usr/local] [DESTDIR=]: mbk in bin/, the plugins in
# lib/mbk/plugins (mbk searches ../lib/mbk/plugins from its own binary, so
# this layout needs no configuration), completions, man pages, examples,
# systemd units. Installed as root, every file is root's and writable by
# root alone, as mbk's plugin trust rules require.
PREFIX ?= /usr/local
BINDIR = $(PREFIX)/bin
PLUGINDIR = $(PREFIX)/lib/mbk/plugins
DATADIR = $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/mbk
UNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
UNITS := mbk-daemon.service mbk-run@.service mbk-run@.timer

# make deb: the Debian package (nfpm, packaging/mkdeb) holding what make
# install lays out under /usr, plus /etc/mbk (the example .env, 0600, a
# conffile). Written to $(BIN)/.
.PHONY: deb
deb:
	rm -rf $(abspath $(BIN))/deb-root
	$(MAKE) install PREFIX=/usr DESTDIR=$(abspath $(BIN))/deb-root ZSHCOMPDIR=/usr/share/zsh/vendor-completions
	$(GO) run ./packaging/mkdeb -root $(abspath $(BIN))/deb-root -version $(VERSION) \
	  -env pipelines/moodle.env.example -scripts packaging/deb -out $(BIN)

# make image [IMAGE=mbk:latest]: the container image (packaging/Dockerfile),
# FROM scratch with the static binaries, the host's CA certificates and zone
# data; docker build needs no registry for it.
IMAGE ?= mbk:latest
.PHONY: image
image: build
	rm -rf $(abspath $(BIN))/image
	install -d -m 0755 $(BIN)/image/rootfs/usr/bin $(BIN)/image/rootfs/usr/lib/mbk/plugins \
	  $(BIN)/image/rootfs/etc/ssl/certs $(BIN)/image/rootfs/etc/mbk/pipelines $(BIN)/image/rootfs/usr/share
	install -d -m 1777 $(BIN)/image/rootfs/tmp
	install -m 0755 $(BIN)/mbk $(BIN)/image/rootfs/usr/bin/mbk
	for p in $(PLUGINS); do install -m 0755 $(BIN)/mbk-plugin-$$p $(BIN)/image/rootfs/usr/lib/mbk/plugins/ || exit 1; done
	install -m 0644 /etc/ssl/certs/ca-certificates.crt $(BIN)/image/rootfs/etc/ssl/certs/
	if [ -d /usr/share/zoneinfo ]; then cp -a /usr/share/zoneinfo $(BIN)/image/rootfs/usr/share/; fi
	cp packaging/Dockerfile $(BIN)/image/
	docker build -q -t $(IMAGE) $(BIN)/image

.PHONY: install
install: build
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0755 $(BIN)/mbk $(DESTDIR)$(BINDIR)/mbk
	for p in $(PLUGINS); do install -m 0755 $(BIN)/mbk-plugin-$$p $(DESTDIR)$(PLUGINDIR)/ || exit 1; done
	$(BIN)/mbk completion bash > $(DESTDIR)$(BASHCOMPDIR)/mbk
	$(BIN)/mbk completion zsh > $(DESTDIR)$(ZSHCOMPDIR)/_mbk
	$(BIN)/mbk completion fish > $(DESTDIR)$(FISHCOMPDIR)/mbk.fish
	chmod 0644 $(DESTDIR)$(BASHCOMPDIR)/mbk $(DESTDIR)$(ZSHCOMPDIR)/_mbk $(DESTDIR)$(FISHCOMPDIR)/mbk.fish
	rm -rf $(BIN)/man && mkdir -p $(BIN)/man && $(BIN)/mbk --lang en gen-man $(BIN)/man && gzip -9nf $(BIN)/man/*.1
	install -m 0644 $(BIN)/man/*.1.gz $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 pipelines/testing.hcl pipelines/production.hcl pipelines/moodle.env.example $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	for u in $(UNITS); do sed 's|@BINDIR@|$(BINDIR)|g' packaging/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; done

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

# The fault suite's bounded fuzzing (TESTING.md): the pipeline loader, the
# restore path's archive reader, the archive's header formatter and the pool
# listing's parser, FUZZTIME each. The fault tests themselves
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
	$(GO) test -run XXX -fuzz FuzzPAXHeader -fuzztime $(FUZZTIME) -fuzzminimizetime 2000x ./plugins/volume/ || rc=1; \
	$(GO) test -run XXX -fuzz FuzzParseListing -fuzztime $(FUZZTIME) -fuzzminimizetime 2000x ./core/spec/ || rc=1; \
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
