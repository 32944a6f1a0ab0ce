# Slipway's build. `make` builds every program; `make test` sets up and runs
# every test; `make help` lists the targets.

CC      ?= cc
PKGS    := libgit2 libssh libcurl jansson yaml-0.1 libcrypto libmicrohttpd libarchive libseccomp zlib
SAN     ?=
BUILD   ?= build$(if $(SAN),/san-$(subst $(comma),-,$(SAN)))
comma   := ,

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP
CFLAGS  += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
# symbols bound at start: gitd's connection processes, forked from the
# listener, then do not each resolve them again on first call
LDFLAGS += -Wl,-z,now
ifneq ($(SAN),)
CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SAN)
endif

LIB_SRC      := $(wildcard lib/*.c)
LIB_OBJ      := $(LIB_SRC:%.c=$(BUILD)/%.o)
GITD_SRC     := $(filter-out gitd/main.c,$(wildcard gitd/*.c))
GITD_OBJ     := $(GITD_SRC:%.c=$(BUILD)/%.o)
BUILDER_SRC  := $(filter-out builder/main.c,$(wildcard builder/*.c))
BUILDER_OBJ  := $(BUILDER_SRC:%.c=$(BUILD)/%.o)
PLUGIN_SRC   := $(filter-out kubectl-slipway/main.c,$(wildcard kubectl-slipway/*.c))
PLUGIN_OBJ   := $(PLUGIN_SRC:%.c=$(BUILD)/%.o) $(BUILD)/kubectl-slipway/dashboard-assets.o
PROGRAMS     := $(BUILD)/bin/deployer $(if $(wildcard gitd/main.c),$(BUILD)/bin/gitd) \
                $(if $(wildcard builder/main.c),$(BUILD)/bin/builder) \
                $(BUILD)/bin/kubectl-slipway $(BUILD)/bin/slipway-post-render
UNIT_SRC     := $(wildcard tests/unit/*.c)
UNIT_BIN     := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit-%)
TOOL_SRC     := $(wildcard tests/tools/*.c)
TOOL_BIN     := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/%)

.PHONY: all deps test unit e2e check-format format env-up env-down demo demo-down fuzz bench bench-deploy images clean help
all: $(PROGRAMS) $(UNIT_BIN) $(TOOL_BIN)

help:
	@echo 'make              build every program into $(BUILD)/bin'
	@echo 'make deps         install build and test dependencies (Debian bookworm, apt-get)'
	@echo 'make demo         install, build, start env "demo" and gitd, git push the sample app (again: push anew)'
	@echo 'make demo-down    stop the demo: gitd, env "demo", remove .demo/'
	@echo 'make test         build, unit tests, start tests/env, end-to-end tests, tear down'
	@echo 'make unit         unit tests only (no cluster needed)'
	@echo 'make e2e          end-to-end tests against a running env (SLIPWAY_ENV_FILE)'
	@echo 'make env-up       start a test environment for manual use (env-down stops it)'
	@echo 'make fuzz         run the libFuzzer targets for FUZZ_SECONDS each (default 10)'
	@echo 'make bench        gitd against OpenSSH sshd + git (bench/push.sh; BENCH_ARGS=...)'
	@echo 'make bench-deploy git push to Succeeded, broken down (bench/deploy.sh; root, buildah)'
	@echo 'make images       images slipway/gitd, slipway/builder and slipway/hooks with buildah (as root; IMAGES_ARGS=--push REG)'
	@echo 'make SAN=address,undefined ...   the same with sanitizers, in build/san-*'
	@echo 'make format       reformat the C sources with .clang-format'

# Each program's code sees its own folder and lib/ only, so code two
# programs share has to live in lib/; tests see everything they test.
INCLUDES := -iquote lib
$(BUILD)/gitd/%.o: INCLUDES := -iquote gitd -iquote lib
$(BUILD)/builder/%.o: INCLUDES := -iquote builder -iquote lib
$(BUILD)/deployer/%.o: INCLUDES := -iquote deployer -iquote lib
$(BUILD)/kubectl-slipway/%.o: INCLUDES := -iquote kubectl-slipway -iquote lib
$(BUILD)/post-render/%.o: INCLUDES := -iquote post-render -iquote lib
$(BUILD)/tests/%.o: INCLUDES := -iquote lib -iquote gitd -iquote builder -iquote kubectl-slipway

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INCLUDES) -c -o $@ $<

$(BUILD)/lib/libslipway.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/bin/deployer: $(BUILD)/deployer/main.o $(BUILD)/lib/libslipway.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/gitd: $(BUILD)/gitd/main.o $(GITD_OBJ) $(BUILD)/lib/libslipway.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/builder: $(BUILD)/builder/main.o $(BUILDER_OBJ) $(BUILD)/lib/libslipway.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# slipway-post-render: the Helm --post-renderer gitd runs helm with
$(BUILD)/bin/slipway-post-render: $(BUILD)/post-render/main.o $(BUILD)/lib/libslipway.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# kubectl-slipway: the kubectl plugin; kubectl runs it as `kubectl slipway`
$(BUILD)/bin/kubectl-slipway: $(BUILD)/kubectl-slipway/main.o $(PLUGIN_OBJ) $(BUILD)/lib/libslipway.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The dashboard's page (kubectl-slipway/dashboard/), embedded as C arrays
# index_html, app_js and app_css with Debian's xxd
DASHBOARD_FILES := index.html app.js app.css
$(BUILD)/kubectl-slipway/dashboard-assets.c: $(addprefix kubectl-slipway/dashboard/,$(DASHBOARD_FILES))
	@mkdir -p $(dir $@)
	cd kubectl-slipway/dashboard && for f in $(DASHBOARD_FILES); do xxd -i $$f || exit 1; done >$(abspath $@).tmp
	mv $@.tmp $@

$(BUILD)/kubectl-slipway/dashboard-assets.o: $(BUILD)/kubectl-slipway/dashboard-assets.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit-%: $(BUILD)/tests/unit/%.o $(GITD_OBJ) $(BUILDER_OBJ) $(PLUGIN_OBJ) $(BUILD)/lib/libslipway.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/tools/%.o $(GITD_OBJ) $(BUILDER_OBJ) $(BUILD)/lib/libslipway.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer targets (tests/fuzz/NAME.c) for the parsers untrusted bytes reach;
# `make fuzz` runs each for FUZZ_SECONDS from its seed corpus.
FUZZ_SECONDS ?= 10
FUZZ_SRC     := $(wildcard tests/fuzz/*.c)
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_CC      ?= clang-14
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -iquote lib -iquote gitd -iquote builder \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null)

build/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(GITD_SRC) $(BUILDER_SRC) $(wildcard lib/*.h gitd/*.h tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(GITD_SRC) $(BUILDER_SRC) $(LDLIBS)

fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
		n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
		echo "fuzz $$n for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
			-artifact_prefix=build/fuzz/$$n- \
			build/fuzz/corpus-$$n tests/fuzz/corpus/$$n 2>build/fuzz/$$n.log || \
			{ tail -40 build/fuzz/$$n.log; exit 1; }; \
		grep -a -E "stat::number_of_executed_units" build/fuzz/$$n.log; \
	done

deps:
	@tests/env/deps.sh

bench: all
	bench/push.sh $(BENCH_ARGS)

bench-deploy: all
	bench/deploy.sh $(BENCH_ARGS)
# images/build.sh: FROM-scratch images from a root filesystem made of this
# host's Debian packages (images/README.md); IMAGES_ARGS='--push REGISTRY'
images: $(PROGRAMS)
	BUILD=$(BUILD) images/build.sh $(IMAGES_ARGS)

unit: $(UNIT_BIN)
	prove --exec '' $(UNIT_BIN)

e2e: all
	SLIPWAY_BUILD=$(CURDIR)/$(BUILD) prove --timer tests/t[0-9]*.sh

test: deps
	@tests/run.sh

env-up:
	@tests/env/env.sh up --name manual

env-down:
	@tests/env/env.sh down --name manual

# examples/demo/demo.sh does it all (deps, build, env, gitd, push); see README.md
demo:
	@examples/demo/demo.sh up

demo-down:
	@examples/demo/demo.sh down

C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
check-format:
	@out=$$(for f in $(C_FILES); do clang-format --dry-run -Werror $$f 2>&1 >/dev/null || echo $$f; done); \
	if [ -n "$$out" ]; then echo "not formatted (run make format):"; echo "$$out"; exit 1; fi

format:
	clang-format -i $(C_FILES)

clean:
	rm -rf build tests/trash-*

# (not in build/images: image root filesystems have directories like registries.conf.d)
-include $(shell find $(BUILD) -path $(BUILD)/images -prune -o -name '*.d' -type f -print 2>/dev/null)
