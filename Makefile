# Weir - one GNU Make build.  See docs/building.md.
#
#   make            optimised build in build/
#   make SAN=1      ASan+UBSan build in build-san/
#   make check      install deps, sanitizer build, every test
#   make bench      install deps, optimised build, benchmarks vs peers
#   make fuzz       libFuzzer targets (clang), run each briefly
#   make demo       run weir-capture on the bundled sample

CC	?= cc
SAN	?= 0
ifeq ($(SAN),1)
BUILD	?= build-san
OPT	 = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	   -fno-sanitize-recover=all
else
BUILD	?= build
OPT	 = -O2 -g
endif

WARN	 = -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
	   -Wshadow -Wcast-qual -Wsign-compare -Wpointer-arith -Wformat=2 \
	   -Wno-unused-parameter
CFLAGS	+= -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -I. -Iinclude -Isrc
LDFLAGS	+= $(if $(filter 1,$(SAN)),-fsanitize=address$(comma)undefined)
LDLIBS	 = -lpcap -lcrypto -ljansson -lzstd -lm -lpthread
comma	:= ,

LIB_SRC	 = $(sort $(wildcard src/lib/*.c src/lib/*/*.c))
CAP_SRC	 = $(sort $(filter-out src/capture/main.c, \
	   $(wildcard src/capture/*.c src/capture/*/*.c)))
UNIT_SRC = $(sort $(wildcard tests/unit/test_*.c))
TOOL_SRC = $(sort $(wildcard tools/*.c))

LIB_OBJ	 = $(LIB_SRC:%.c=$(BUILD)/%.o)
CAP_OBJ	 = $(CAP_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_BIN = $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)

all: $(BUILD)/weir-capture $(BUILD)/weir-tap $(UNIT_BIN) $(TOOL_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libweir.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libcapture.a: $(CAP_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/weir-capture: $(BUILD)/src/capture/main.o $(BUILD)/libcapture.a \
    $(BUILD)/libweir.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/weir-tap: $(BUILD)/src/tap/main.o $(BUILD)/libcapture.a \
    $(BUILD)/libweir.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libcapture.a \
    $(BUILD)/libweir.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tools/%: $(BUILD)/tools/%.o $(BUILD)/libweir.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	./scripts/install-deps.sh

demo: deps
	$(MAKE) all
	./scripts/demo.sh $(BUILD)

check: deps
	$(MAKE) SAN=1 all
	$(MAKE) all
	$(MAKE) fuzz-build
	./tests/run.sh build-san

bench: deps
	$(MAKE) all
	./bench/run.sh build

# libFuzzer targets, built with clang against the library sources.
FUZZ_SRC = $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -I. -Iinclude -Isrc \
	   -fsanitize=fuzzer,address,undefined -Wall -Wextra -Werror \
	   -Wno-unused-parameter
FUZZ_OBJ = $(LIB_SRC:%.c=build-fuzz/obj/%.o) $(CAP_SRC:%.c=build-fuzz/obj/%.o)
build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
build-fuzz/%: tests/fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $^ $(LDLIBS)
fuzz-build: $(FUZZ_BIN)
fuzz: fuzz-build
	./tests/fuzz/run.sh build-fuzz $${FUZZ_SECONDS:-30}

clean:
	rm -rf build build-san build-fuzz

.PHONY: all deps demo check bench fuzz fuzz-build clean
# Keep objects that pattern rules build on the way (unit tests, fuzz).
.SECONDARY:
-include $(shell find build build-san build-fuzz -name '*.d' 2>/dev/null)
