# Strata build. `make test` is the one test command (README, .ci/run).
SHELL := /bin/bash
GO ?= go

# Pinned tools, each installed with `go install` into its own versioned
# directory, so `make tools` is a no-op once they are there.
TOOLS_DIR ?= $(HOME)/.cache/strata-tools
MINIO_VERSION ?= v0.0.0-20260212201848-7aac2a2c5b7c
GOLANGCI_LINT_VERSION ?= v2.15.0
BUF_VERSION ?= v1.75.0
PROTOC_GEN_GO_VERSION ?= v1.36.12
PROTOC_GEN_GO_GRPC_VERSION ?= v1.6.2

MINIO := $(TOOLS_DIR)/minio-$(MINIO_VERSION)/minio
GOLANGCI_LINT := $(TOOLS_DIR)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint
BUF := $(TOOLS_DIR)/buf-$(BUF_VERSION)/buf
PROTOC_GEN_GO := $(TOOLS_DIR)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION)/protoc-gen-go
PROTOC_GEN_GO_GRPC := $(TOOLS_DIR)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)/protoc-gen-go-grpc

TEST_TIMEOUT ?= 30m
FUZZTIME ?= 20s
BENCHTIME ?= 1s
BENCHCOUNT ?= 1
RUN_ARGS ?=

.PHONY: all build run test test-unit lint verify bench fuzz tools proto clean

all: build

build:
	$(GO) build -o bin/strata ./cmd/strata

# The README quick start: a broker with embedded etcd and a filesystem
# object store under ./strata-data.
run: build
	./bin/strata serve $(RUN_ARGS)

# Every test: unit tests with the race detector, fuzz seed corpora, and the
# integration tests (real broker processes, embedded etcd, a real MinIO).
test: $(MINIO)
	GOOS=darwin GOARCH=arm64 $(GO) build ./...   # developers on macOS build it too
	STRATA_MINIO_BIN=$(MINIO) $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

lint: $(GOLANGCI_LINT) $(BUF)
	$(GOLANGCI_LINT) run ./...
	cd proto && $(BUF) lint

verify: lint
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) mod tidy
	git diff --exit-code -- go.mod go.sum
	$(MAKE) proto
	git diff --exit-code -- proto/

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./...

# Runs every fuzz target of every package for FUZZTIME each.
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		pkg=./$$(dirname $$f); \
		for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/^func //'); do \
			echo "== $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

tools: $(MINIO) $(GOLANGCI_LINT) $(BUF) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC)

$(MINIO):
	GOBIN=$(dir $@) $(GO) install github.com/minio/minio@$(MINIO_VERSION)
$(GOLANGCI_LINT):
	GOBIN=$(dir $@) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
$(BUF):
	GOBIN=$(dir $@) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(PROTOC_GEN_GO):
	GOBIN=$(dir $@) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(PROTOC_GEN_GO_GRPC):
	GOBIN=$(dir $@) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

proto: $(BUF) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC)
	cd proto && PATH=$(dir $(BUF)):$(dir $(PROTOC_GEN_GO)):$(dir $(PROTOC_GEN_GO_GRPC)):$$PATH $(BUF) generate

clean:
	rm -rf bin
