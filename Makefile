# mcpauth — make targets. `make run` and `make test` are the two a newcomer needs.
GO        ?= go
# go.mod needs Go 1.27.3; a machine starts on its own (older) Go, and `go` takes this toolchain
# from the module proxy once (a go.mod line alone does not switch where GOTOOLCHAIN=local).
export GOTOOLCHAIN := go1.27.3
BIN       := bin/mcpauth
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# make run keeps its data (embedded store, master key) in the checkout; delete .data to start over.
DATA_DIR  ?= $(CURDIR)/.data
LISTEN    ?= 127.0.0.1:8080

.PHONY: build run test test-deps bench guard-instructions fuzz lint tidy-check cover clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/mcpauth

# Serves streamable HTTP (/mcp) and SSE (/sse) on $(LISTEN) with the embedded store. The first
# start prints the bootstrap owner's credentials to stderr.
run: build
	MCPAUTH_DATA_DIR=$(DATA_DIR) ./$(BIN) serve --transport http --listen $(LISTEN)

# Everything, with the race detector, against a real MongoDB-wire server (embedded FerretDB, or
# MCPAUTH_TEST_MONGO_URI) and real redis-servers. .ci/test-deps.sh finds gcc and redis-server,
# installs them (root on Debian), or says the one command to run.
test: test-deps lint tidy-check
	$(GO) test -race -count=1 -timeout 20m ./...

test-deps:
	@bash .ci/test-deps.sh

# Statement coverage per package, the end-to-end tests included: the test processes and every
# binary they start (built with -cover, see mcptest.Build) write their counters into one
# directory, merged by go tool covdata. Without the race detector; about 8 minutes.
COVER_DIR ?= $(CURDIR)/.cover
cover: test-deps
	rm -rf $(COVER_DIR) && mkdir -p $(COVER_DIR)/data
	MCPAUTH_TEST_COVERDIR=$(COVER_DIR)/data $(GO) test -count=1 -timeout 30m -cover -coverpkg=github.com/bduf/mcpauth/... ./... -args -test.gocoverdir=$(COVER_DIR)/data > $(COVER_DIR)/test.log 2>&1 || { tail -50 $(COVER_DIR)/test.log; exit 1; }
	$(GO) tool covdata percent -i=$(COVER_DIR)/data -pkg=$$($(GO) list ./... | grep -v -e /mcpauth/internal/ -e 'test$$' -e /storeerr | paste -sd, -)
	$(GO) tool covdata textfmt -i=$(COVER_DIR)/data -o $(COVER_DIR)/profile.txt && echo "profile: $(COVER_DIR)/profile.txt (go tool cover -html=$(COVER_DIR)/profile.txt)"

# Benchmarks, each with its baseline in the same run; the "ratio" and "delta" rows are what to
# compare. Then the load generator against the real bduf-demo, guarded and unguarded, closed
# loop and open loop at 10,000 calls/s (README, Performance), and the stores' hot look-ups at 10,
# 1,000 and 100,000 users (BenchmarkScale: seeding 100,000 users is most of its 3 minutes).
# About 12 minutes on 2 cores.
BENCH_COUNT ?= 3
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1s -count $(BENCH_COUNT) -timeout 30m ./mcp/ ./auth/ ./auth/oauth/ ./rbac/ ./audit/
	$(GO) test -run '^$$' -bench Scale -benchtime 20x -count 1 -timeout 30m ./internal/scale/
	$(GO) build -o bin/bduf-demo ./cmd/bduf-demo
	$(GO) run ./cmd/mcpauth-load --server-bin bin/bduf-demo --sessions 64 --duration 10s --rounds 2 --audit-granted-sample 0
	$(GO) run ./cmd/mcpauth-load --server-bin bin/bduf-demo --sessions 64 --duration 10s --rounds 2 --audit-granted-sample 0 --rate 10000

# The guard's instructions per HTTP call (cachegrind; needs valgrind), a figure that does not
# move with the machine as the load test's CPU figure does. CALLS=30000 repeats to about ±0.5k.
guard-instructions:
	GO=$(GO) bash cmd/mcpauth-load/guard-instructions.sh

# Fuzz targets, briefly (CI runs them too); FUZZTIME=10m for a real session.
FUZZTIME ?= 5s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzValidateAccessToken$$' -fuzztime $(FUZZTIME) ./auth/
	$(GO) test -run '^$$' -fuzz '^FuzzParseAPIKey$$' -fuzztime $(FUZZTIME) ./auth/
	$(GO) test -run '^$$' -fuzz '^FuzzPeekJSONRPC$$' -fuzztime $(FUZZTIME) ./mcp/

# gofmt of the toolchain above (not the one on the PATH), go vet, staticcheck and gci's import
# groups (standard library, others, ours; both pinned, built once into the build cache, go.mod
# untouched), and govulncheck against the
# pinned offline vulnerability database (.ci/govulncheck.sh: fails on a reachable finding that
# .ci/govulncheck-accepted.txt does not list; the first run builds the database, ~2 min).
STATICCHECK ?= v0.8.2
GCI         ?= v0.13.7
GCI_SECTIONS := -s standard -s default -s 'prefix(github.com/bduf/mcpauth)'
lint:
	@out=$$("$$($(GO) env GOROOT)/bin/gofmt" -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK) ./...
	@out=$$($(GO) run github.com/daixiang0/gci@$(GCI) list $(GCI_SECTIONS) $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "imports not in three groups (standard, others, ours); fix with: go run github.com/daixiang0/gci@$(GCI) write $(GCI_SECTIONS) FILE"; echo "$$out"; exit 1; fi
	GO=$(GO) bash .ci/govulncheck.sh

tidy-check:
	$(GO) mod tidy -diff

clean:
	rm -rf bin .cover
