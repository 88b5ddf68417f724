# ctxbench build. Portable code is compiled for baseline x86-64; *_avx2.c with the avx2 gate's ISA (AVX2,
# FMA, F16C, BMI2: CPUs without AVX-512, docs/performance.md "Kernel paths"); files named *_avx512.c are compiled
# with exactly the ISA of the avx512 gate in engines/kernels/cpu.c (AVX-512 F/BW/VL/DQ, FMA, F16C, BMI2):
# their few AVX512-BF16 and VNNI functions say so with a target attribute (CB_TARGET_BF16/_VNNI in
# kernels_avx512.h) and run only after cb_cpu() found that feature; *_amx.c adds BF16 + AMX, which the
# amx gate checks (with the OS permission for tile state).
#   make            check the Debian packages (scripts/install-deps.sh --check), build build/ctxbench
#   make test       install missing packages, build and run the Criterion suite
#   make test-cluster  a real Slurm job array on a one-node cluster on localhost
#   make demo       install missing packages, run the default workload end to end
#   make bench      kernel and engine benchmarks (vs OpenBLAS and the measured machine peak);
#                   BENCH_ARGS=... picks the kernel section, BENCH_ENGINES=0 skips the engine half
#   make asan       ASan + UBSan build of the tests, run
#   make fuzz       the libFuzzer targets of tests/fuzz/, FUZZ_SECONDS each (docs/promises.md)

CC      ?= gcc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
CFLAGS_COMMON = -std=c17 $(OPT) -g -Wall -Wextra -Werror -fopenmp -D_GNU_SOURCE -fno-math-errno \
                -fno-strict-aliasing -MMD -MP $(SAN)
AVX2_FLAGS    = -mavx2 -mfma -mf16c -mbmi2
AVX512_FLAGS  = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c -mbmi2
AMX_FLAGS     = $(AVX512_FLAGS) -mavx512bf16 -mamx-tile -mamx-bf16 -mamx-int8
LDLIBS  = -fopenmp -ljansson -lsqlite3 -lpapi -lsde -lm -lpthread -ldl -lyaml $(SAN)
CRITERION_LIBS = -lcriterion
BLAS_LIBS = -lopenblas -ldnnl

ENGINE_SRC  = $(wildcard engines/*.c engines/*/*.c)
HARNESS_SRC = $(filter-out harness/cli/main.c,$(wildcard harness/*/*.c))
LIB_SRC     = $(ENGINE_SRC) $(HARNESS_SRC)
LIB_OBJ     = $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC    = $(wildcard tests/*.c)
TEST_OBJ    = $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC   = $(wildcard bench/*.c)
BENCH_OBJ   = $(BENCH_SRC:%.c=$(BUILD)/%.o)

.PHONY: all deps test test-cluster demo bench asan clean valgrind FORCE
# A plain `make` first checks the Debian packages (installing nothing): a missing one is named with the
# command that installs it, instead of a compiler error at a missing header.
all:
	@scripts/install-deps.sh --check
	@$(MAKE) --no-print-directory $(BUILD)/ctxbench

deps:
	@scripts/install-deps.sh

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(AVX2_FLAGS) -c $< -o $@

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(AVX512_FLAGS) -c $< -o $@

$(BUILD)/%_amx.o: %_amx.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(AMX_FLAGS) -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -c $< -o $@

# Build identity (commit, flags) for the machine record: regenerated every make, rewritten only when it
# changes, so a stale object never carries an old commit and an unchanged tree does not relink.
$(BUILD)/build_info_gen.h: FORCE
	@mkdir -p $(BUILD); printf '#define CB_GIT_COMMIT "%s"\n#define CB_CFLAGS "%s"\n#define CB_AVX512_FLAGS "%s"\n' \
	    "$$(git describe --always --dirty 2>/dev/null || echo unknown)" "$(strip $(CFLAGS_COMMON))" "$(AVX512_FLAGS)" >$@.tmp; \
	    if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
$(BUILD)/harness/measure/build_info.o: harness/measure/build_info.c $(BUILD)/build_info_gen.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -I$(BUILD) -c $< -o $@
FORCE:

$(BUILD)/ctxbench: $(BUILD)/harness/cli/main.o $(LIB_OBJ)
	$(CC) -o $@ $^ $(LDLIBS)
	@ln -sf $(BUILD)/ctxbench ctxbench 2>/dev/null || true

$(BUILD)/ctxbench-tests: $(TEST_OBJ) $(LIB_OBJ)
	$(CC) -o $@ $^ $(CRITERION_LIBS) $(LDLIBS)

$(BUILD)/ctxbench-bench: $(BENCH_OBJ) $(LIB_OBJ)
	$(CC) -o $@ $^ $(BLAS_LIBS) $(LDLIBS)

# The suite runs from the repo root (fixtures at tests/fixtures). CTXBENCH_BIN lets tests run the CLI.
test: deps
	@$(MAKE) --no-print-directory $(BUILD)/ctxbench $(BUILD)/ctxbench-tests
	CTXBENCH_BIN=$(BUILD)/ctxbench $(BUILD)/ctxbench-tests --tap=$(BUILD)/tests.tap $(TEST_ARGS)
	@# the suite's summary counts no skips: list each one with its reason (a CPU without AMX skips the tile tests)
	@grep '# SKIP' $(BUILD)/tests.tap | grep -v '# SKIP test was skipped$$' | sed 's/^ok - /  skipped: /' >$(BUILD)/tests.skipped || true
	@echo "$$(wc -l <$(BUILD)/tests.skipped) test(s) skipped on this machine:"; cat $(BUILD)/tests.skipped
	@$(MAKE) --no-print-directory fuzz-build
	scripts/fuzz.sh $(FUZZ_TEST_SECONDS)

# A real Slurm run: one-node cluster on localhost, the shipped job array, shards merged and checked against
# a one-process run (scripts/test-cluster.sh; installs slurm and munge as root).
test-cluster: deps
	@$(MAKE) --no-print-directory $(BUILD)/ctxbench
	scripts/test-cluster.sh $(BUILD)/ctxbench

demo: deps
	@$(MAKE) --no-print-directory $(BUILD)/ctxbench
	scripts/demo.sh $(BUILD)/ctxbench

bench: deps
	@$(MAKE) --no-print-directory OPT=-O3 BUILD=build-bench build-bench/ctxbench-bench build-bench/ctxbench
	OPENBLAS_CORETYPE=SkylakeX GOMP_SPINCOUNT=20000 OPENBLAS_THREAD_TIMEOUT=4 build-bench/ctxbench-bench $(BENCH_ARGS)
	@if [ -z "$(BENCH_ARGS)" ]; then build-bench/ctxbench-bench flash-decode && build-bench/ctxbench-bench decode-stack; fi
	@if [ "$(BENCH_ENGINES)" != 0 ]; then scripts/bench-engines.sh build-bench/ctxbench results/bench-engines.db; fi

# libFuzzer targets (tests/fuzz/, docs/promises.md): clang with ASan + UBSan, only the readers they fuzz.
#   make fuzz FUZZ_SECONDS=600     each target for that long, one after another
# make test runs each for FUZZ_TEST_SECONDS (a bounded regression run of the committed seeds and beyond).
FUZZ_CC      ?= $(shell command -v clang-14 || command -v clang)
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 3
FUZZ_CFLAGS   = -std=c17 -g -O1 -D_GNU_SOURCE -Wall -Wextra -fsanitize=fuzzer-no-link,address,undefined \
                -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_TARGETS  = safetensors config workload tokens reference
FUZZ_DEPS_safetensors = engines/model/safetensors.c
FUZZ_DEPS_config      = engines/model/config.c
FUZZ_DEPS_workload    = harness/measure/workload.c harness/results/point_types.c
FUZZ_DEPS_tokens      = harness/measure/tokens.c engines/model/safetensors.c
FUZZ_DEPS_reference   = harness/measure/verify_reference.c engines/model/safetensors.c
build-fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
define fuzz_target
build-fuzz/fuzz_$(1): build-fuzz/tests/fuzz/fuzz_$(1).o build-fuzz/engines/common.o $$(FUZZ_DEPS_$(1):%.c=build-fuzz/%.o)
	$$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $$@ $$^ -ljansson -lyaml -lm
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_target,$(t))))
fuzz-build: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	scripts/fuzz.sh $(FUZZ_SECONDS)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" \
	    build-asan/ctxbench build-asan/ctxbench-tests
	@# Criterion's workers report a leak without failing their test: the log decides
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    CTXBENCH_BIN=build-asan/ctxbench build-asan/ctxbench-tests $(TEST_ARGS) >build-asan/tests.log 2>&1; \
	    rc=$$?; cat build-asan/tests.log; [ $$rc -eq 0 ] || exit $$rc; \
	    if grep -q 'ERROR: [A-Za-z]*Sanitizer' build-asan/tests.log; then echo "make asan: sanitizer errors above"; exit 1; fi

valgrind: deps
	@$(MAKE) --no-print-directory $(BUILD)/ctxbench
	scripts/valgrind.sh $(BUILD)/ctxbench

clean:
	rm -rf build build-asan build-bench build-fuzz ctxbench

-include $(shell find $(BUILD) build-fuzz -name '*.d' 2>/dev/null)
