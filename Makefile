# tcpscope: eBPF TCP connection tracer.
# `make help` lists the targets. The BPF objects in tracer/ are generated
# with the pinned clang-19 and committed; building needs only Go.

# Go from PATH, else where the official tarball puts it (sudo drops PATH).
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# The tests and test/vm/run.sh run `go` themselves: the same one.
export PATH := $(dir $(GO)):$(PATH)
CLANG   ?= clang-19
BIN     := bin/tcpscope
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X main.version=$(VERSION)
ARGS    ?=
# Configurations `make bench` measures beside no tracer (test/bench -only).
BENCH_ONLY ?= default,packets-all,packets-none,summary-only,tcpstates,tcpdump
# Extra flags for the storm and bulk benchmarks (test/bench -help).
BENCH_ARGS ?=

GENERATED := tracer/tcpscope_bpfel.go tracer/tcpscope_bpfel.o

.DEFAULT_GOAL := help
.PHONY: help build run test test-unit test-e2e test-kernels check-kernels-doc bench bench-go bench-storm bench-bulk bench-replay generate vmlinux check-generate vet deps-test deps-gen deps-vm clean

help: ## list targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z0-9-]+:.*## /{printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/tcpscope
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/tcpscope

run: build ## build and trace this host (as root); pass flags with ARGS="..."
	./$(BIN) trace $(ARGS)

# `make test` keeps the whole `go test -json` stream here (the output of
# the tests that passed too); it prints only failures, skips, package
# results and a count.
TESTLOG ?= .cache/test.json
# Packages `make test` runs.
TESTPKGS ?= ./...

test: SHELL := /bin/bash
test: deps-test ## the whole suite: unit tests and, as root, end-to-end tests; ends with a count of passed, failed, skipped
	@mkdir -p .cache $(dir $(TESTLOG))
	@$(GO) build -o .cache/testsum ./test/testsum
	set -o pipefail; TCPSCOPE_E2E=1 $(GO) test -json -count=1 $(TESTPKGS) | tee $(TESTLOG) | .cache/testsum

test-unit: ## unit tests only (no root needed)
	$(GO) test -count=1 ./cmd/... ./tracer/... ./output/...

test-e2e: deps-test ## end-to-end tests only (root)
	TCPSCOPE_E2E=1 $(GO) test -count=1 -v ./test/...

test-kernels: deps-vm ## kernel matrix (root): the portable suite on this host and on Debian 6.1 and 6.12 in qemu; writes docs/kernels.md
	test/vm/run.sh host 6.1 6.12

check-kernels-doc: ## after test-kernels: fail if docs/kernels.md differs from the committed one (beyond exact releases) or the README lacks a series
	test/vm/check-kernels-doc.sh

bench: build ## everything in one run of at most 15 min (root): Go pipeline benchmarks, then storm (5 rounds x 100k connections) and bulk (5 rounds x 5 s) for no tracer, $(BENCH_ONLY) (bulk without summary-only: one record, the cost of its packet mode); bin/bench.md and .json
	$(GO) run ./test/bench -mode all -go-bench -time-limit 15m -only $(BENCH_ONLY) -tcpscope $(BIN) -md bin/bench.md -json bin/bench.json $(BENCH_ARGS)

bench-go: ## decoder, correlator, analyzer and formatter benchmarks (no root)
	$(GO) test -run '^$$' -bench . -benchmem ./tracer/... ./output/...

bench-storm: build ## connection storm, 5 rounds x 100k connections: no tracer, tcpscope modes, tcpstates, tcpdump -w (root, 10-15 min); bin/bench-storm.md and .json
	$(GO) run ./test/bench -mode storm -tcpscope $(BIN) -md bin/bench-storm.md -json bin/bench-storm.json $(BENCH_ARGS)

bench-bulk: build ## one bulk transfer, 5 rounds x 5 s, same configurations (root, about 4 min); bin/bench-bulk.md and .json
	$(GO) run ./test/bench -mode bulk -tcpscope $(BIN) -md bin/bench-bulk.md -json bin/bench-bulk.json $(BENCH_ARGS)

bench-replay: build ## capture one storm's raw records (30k connections, --record-dump bin/storm.rec), then replay them on one core in each mode: ns per record of the real mix without the storm's noise (root, about 1 min)
	$(GO) run ./test/bench -mode storm -n 30000 -rounds 1 -only capture -config capture=--record-dump=$(CURDIR)/bin/storm.rec -tcpscope $(BIN) -md bin/bench-replay-capture.md $(BENCH_ARGS)
	TCPSCOPE_REPLAY=$(CURDIR)/bin/storm.rec $(GO) test -run '^$$' -bench Replay -benchtime 5x ./tracer/

generate: deps-gen ## regenerate the BPF objects from bpf/ (bpf2go + clang-19, vendored libbpf headers)
	cd tracer && BPF2GO_CC=$(CLANG) $(GO) generate ./...

vmlinux: ## regenerate bpf/vmlinux.h from this kernel's BTF (needs bpftool)
	@command -v bpftool >/dev/null || { echo "installing: bpftool"; \
	   apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bpftool; }
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h

check-generate: generate ## regenerate and fail if the committed objects differ
	@git diff --exit-code --stat -- $(GENERATED) || { echo "generated BPF objects are stale: run make generate and commit"; exit 1; }

vet: ## go vet
	$(GO) vet ./...

deps-test: ## install the test tools if missing (Debian, root)
	@missing=""; command -v tcpdump >/dev/null || missing="$$missing tcpdump"; \
	 command -v ip >/dev/null || missing="$$missing iproute2"; \
	 command -v nft >/dev/null || missing="$$missing nftables"; \
	 command -v tshark >/dev/null || missing="$$missing tshark"; \
	 if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	   apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi

# The libbpf headers are vendored in bpf/headers (bpf/headers/update.sh).
deps-gen: ## install clang-19 and llvm-19 if missing
	@missing=""; command -v $(CLANG) >/dev/null || missing="$$missing clang-19"; \
	 command -v llvm-strip-19 >/dev/null || missing="$$missing llvm-19"; \
	 if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	   apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

deps-vm: ## install qemu, busybox-static, cpio, xz-utils if missing (Debian, root)
	@missing=""; command -v qemu-system-x86_64 >/dev/null || missing="$$missing qemu-system-x86"; \
	 [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx insmod || missing="$$missing busybox-static"; \
	 command -v cpio >/dev/null || missing="$$missing cpio"; \
	 command -v xz >/dev/null || missing="$$missing xz-utils"; \
	 if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	   apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi

clean: ## remove build output
	rm -rf bin
