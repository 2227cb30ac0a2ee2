# Quantum Trader in C — build, test, bench, fuzz.
#   make                 build libcommon, services, tools and tests
#   make test            every test (unit + integration against a real redis-server)
#   make bench           benchmarks (figures, not pass/fail)
#   make soak            the long whole-stack checks (QT_SOAK=1: bigger replays, more modes)
#   make fuzz            libFuzzer runs of tests/fuzz/fuzz_*.c (needs clang)
#   make SANITIZE=address,undefined test    sanitizer build (in build/san-*)
#   make valgrind        unit tests under valgrind
#   WERROR=1             warnings are errors (CI sets it)
# Missing Debian packages are installed by deploy/install-deps.sh (as root).

CC ?= cc
WERROR ?= 0
SANITIZE ?=
MBEDTLS_LIBS ?= -lmbedcrypto
PKGS := hiredis libevent libevent_pthreads jansson libcurl

ifeq ($(SANITIZE),)
BUILD ?= build
else
BUILD ?= build/san-$(subst $(comma),-,$(SANITIZE))
endif
comma := ,

DEPS_OK := $(shell pkg-config --exists $(PKGS) 2>/dev/null && test -f /usr/include/mbedtls/md.h && \
             command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null && echo yes)
GOALS := $(or $(MAKECMDGOALS),all)

ifneq ($(DEPS_OK),yes)
ifneq ($(filter-out clean,$(GOALS)),)
# Dependencies are missing: install them, then run the same goals again.
$(GOALS): install-deps
	@$(MAKE) --no-print-directory $@
install-deps:
	@sh deploy/install-deps.sh
.PHONY: $(GOALS) install-deps
endif
else

WARN := -Wall -Wextra -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wwrite-strings
ifeq ($(WERROR),1)
WARN += -Werror
endif
OPT ?= -O2
CFLAGS ?= $(OPT) -g
# Every object sees libcommon/, proto/ and its own folder; tests and
# benchmarks also tests/, and a unit test the one service folder whose
# modules it tests (TEST_INC below). No target sees every service at once.
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Ilibcommon -Iproto $(shell pkg-config --cflags $(PKGS))
OBJ_INC = -I$(patsubst %/,%,$(dir $<)) $(if $(filter tests/% bench/%,$<),-Itests) $(addprefix -I,$(TEST_INC))
LDLIBS := $(shell pkg-config --libs $(PKGS)) -levent_core $(MBEDTLS_LIBS) -lm
ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif
# gcc's "undefined" leaves out a double cast to an integer it cannot hold
# (outside input does reach such casts: times and counts of CSV rows).
ifneq ($(findstring undefined,$(SANITIZE)),)
ALL_CFLAGS += -fsanitize=float-cast-overflow
LDFLAGS += -fsanitize=float-cast-overflow
endif

LIB_SRC := $(wildcard libcommon/*.c) $(wildcard proto/*.c)
SCHEMAS := $(sort $(wildcard proto/schemas/*.json))
GEN := $(BUILD)/gen/proto_schemas.c
LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/gen/proto_schemas.o
LIB := $(BUILD)/libcommon.a

SERVICES := $(notdir $(patsubst %/,%,$(dir $(wildcard services/*/main.c))))
TOOLS := $(notdir $(patsubst %/,%,$(dir $(wildcard tools/*/main.c))))
SERVICE_BINS := $(addprefix $(BUILD)/bin/,$(SERVICES) $(TOOLS))

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
INTEG_TESTS := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(wildcard tests/integration/test_*.c))
SCRIPT_TESTS := $(wildcard tests/scripts/test_*)
TEST_BINS := $(patsubst tests/bin/%.c,$(BUILD)/tests/bin/%,$(wildcard tests/bin/*.c))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
HARNESS_OBJ := $(BUILD)/obj/tests/harness.o $(BUILD)/obj/tests/stack.o

all: $(LIB) $(SERVICE_BINS) $(UNIT_TESTS) $(INTEG_TESTS) $(TEST_BINS) $(BENCH_BINS)

$(GEN): proto/embed.sh $(SCHEMAS)
	@mkdir -p $(dir $@)
	sh proto/embed.sh $@ $(SCHEMAS)

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(OBJ_INC) -MMD -MP -c $< -o $@

# The service or tool folder each unit test or benchmark tests.
$(BUILD)/obj/tests/unit/test_trading_logic.o $(BUILD)/obj/tests/unit/test_engine_modules.o: TEST_INC := services/trading-engine
$(BUILD)/obj/tests/unit/test_orchestrator.o: TEST_INC := services/policy-store
$(BUILD)/obj/tests/unit/test_ppo.o: TEST_INC := tools/rl-train
$(BUILD)/obj/tests/unit/test_rsm.o $(BUILD)/obj/tests/unit/test_thresholds.o $(BUILD)/obj/bench/ml_bench.o: TEST_INC := services/ml-threshold

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# One binary per services/<name>/ and tools/<name>/ from its *.c
define PROGRAM_RULE
$(BUILD)/bin/$(2): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard $(1)/$(2)/*.c)) $(LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$(filter %.o,$$^) $$(filter %.a,$$^) $$(LDLIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call PROGRAM_RULE,services,$(s))))
# The dashboard page, embedded into the trading-engine.
$(BUILD)/gen/dashboard_html.c: deploy/embed-text.sh services/trading-engine/dashboard.html
	@mkdir -p $(dir $@)
	sh deploy/embed-text.sh $@ dashboard_html services/trading-engine/dashboard.html
$(BUILD)/bin/trading-engine: $(BUILD)/obj/gen/dashboard_html.o
$(foreach t,$(TOOLS),$(eval $(call PROGRAM_RULE,tools,$(t))))

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)

# Unit tests of a service's modules link those objects too.
$(BUILD)/tests/test_orchestrator: $(BUILD)/obj/services/policy-store/orchestrator.o
$(BUILD)/tests/test_trading_logic: $(addprefix $(BUILD)/obj/services/trading-engine/,live.o riskguard.o ledger.o)
$(BUILD)/tests/test_engine_modules: $(addprefix $(BUILD)/obj/services/trading-engine/,\
  intents.o equity.o joins.o decide.o declog.o book.o live.o riskguard.o ledger.o)
$(BUILD)/tests/test_ppo: $(addprefix $(BUILD)/obj/tools/rl-train/,ppo.o env.o)
$(BUILD)/tests/test_rsm: $(BUILD)/obj/services/ml-threshold/rsm.o
$(BUILD)/tests/test_fuzz_corpus: $(addprefix $(BUILD)/obj/tests/fuzz/,fuzz_event.o replay.o)
$(BUILD)/tests/test_kline: $(addprefix $(BUILD)/obj/tests/fuzz/,fuzz_kline.o replay.o)
$(BUILD)/tests/test_thresholds: $(BUILD)/obj/services/ml-threshold/thresholds.o
$(BUILD)/bench/ml_bench: $(addprefix $(BUILD)/obj/services/ml-threshold/,rsm.o thresholds.o)

$(INTEG_TESTS): $(BUILD)/tests/%: $(BUILD)/obj/tests/integration/%.o $(HARNESS_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)

$(BUILD)/tests/bin/%: $(BUILD)/obj/tests/bin/%.o $(HARNESS_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(HARNESS_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)

run: all
	@sh deploy/run.sh $(BUILD)

test: all
	@QT_BUILD=$(BUILD) sh tests/run.sh $(UNIT_TESTS) $(INTEG_TESTS) $(SCRIPT_TESTS)

unit: all
	@QT_BUILD=$(BUILD) sh tests/run.sh $(UNIT_TESTS)

VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
valgrind: all
	@QT_BUILD=$(BUILD) QT_TEST_WRAPPER="$(VALGRIND)" sh tests/run.sh $(UNIT_TESTS)
	@QT_BUILD=$(BUILD) QT_CHILD_WRAPPER="$(VALGRIND)" sh tests/run.sh $(BUILD)/tests/test_httpd \
	  $(BUILD)/tests/test_policy_store $(BUILD)/tests/test_trade_executor $(BUILD)/tests/test_rl_decision $(BUILD)/tests/test_ml_threshold

# The long whole-stack checks: the same tests with bigger replays and more modes.
SOAK_TESTS := $(BUILD)/tests/test_determinism
soak: all
	@QT_SOAK=1 QT_TEST_TIMEOUT=3600 QT_BUILD=$(BUILD) sh tests/run.sh $(SOAK_TESTS)

bench: all
	@for b in $(BENCH_BINS); do QT_BUILD=$(BUILD) $$b || exit 1; done

# Each target in tests/fuzz/fuzz_<name>.c runs FUZZ_SECONDS on its seeds
# (tests/fuzz/corpus for the event decoder, tests/fuzz/corpus-<name> for the
# others) with tests/fuzz/<name>.dict, keeping what it finds in
# $(BUILD)/fuzz/corpus-<name>.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz:
	@command -v clang >/dev/null || { echo "make fuzz needs clang: apt-get install clang libclang-rt-dev" >&2; exit 1; }
	@mkdir -p $(BUILD)/fuzz $(BUILD)/gen
	sh proto/embed.sh $(BUILD)/gen/proto_schemas.c $(SCHEMAS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  seeds=tests/fuzz/corpus-$$t; [ "$$t" = event ] && seeds=tests/fuzz/corpus; \
	  echo "== fuzz_$$t ($(FUZZ_SECONDS) s, seeds in $$seeds)"; mkdir -p $(BUILD)/fuzz/corpus-$$t; \
	  clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Ilibcommon -Iproto \
	    $(shell pkg-config --cflags $(PKGS)) tests/fuzz/fuzz_$$t.c $(LIB_SRC) $(BUILD)/gen/proto_schemas.c \
	    -o $(BUILD)/fuzz/fuzz_$$t $(LDLIBS); \
	  dict=; [ -f tests/fuzz/$$t.dict ] && dict=-dict=tests/fuzz/$$t.dict; \
	  $(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 $$dict $(BUILD)/fuzz/corpus-$$t $$seeds; \
	done

.PHONY: all run test unit valgrind bench soak fuzz clean
.SECONDARY:
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
endif

clean:
	rm -rf build
