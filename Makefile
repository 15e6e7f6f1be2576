# kiln's build: the C core as build/libkiln.so, the C tests, and a sanitizer build.
#   make            build/libkiln.so
#   make test-c     build and run the C tests
#   make asan       the same tests with -fsanitize=address,undefined (build/asan/)
CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
CFLAGS  += -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -Wall -Wextra -Werror $(OPT) -g -Iinclude -Isrc -fopenmp
LDLIBS  += -ldl -lm -lpthread -fopenmp

SRCS    := $(sort $(wildcard src/*/*.c src/*/*/*.c))
OBJS    := $(SRCS:%.c=$(BUILD)/obj/%.o)
TESTS   := $(sort $(wildcard tests/c/test_*.c))
TESTBIN := $(TESTS:tests/c/%.c=$(BUILD)/tests/%)

.PHONY: all test-c asan clean
all: $(BUILD)/libkiln.so

$(BUILD)/obj/%.o: %.c $(wildcard include/*.h include/*.def src/*/*.h src/*/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libkiln.so: $(OBJS)
	$(CC) -shared -o $@ $(OBJS) $(LDLIBS) $(LDFLAGS)

$(BUILD)/libkiln.a: $(OBJS)
	ar rcs $@ $(OBJS)

$(BUILD)/tests/%: tests/c/%.c tests/c/check.h $(BUILD)/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/c $< -o $@ $(BUILD)/libkiln.a $(LDLIBS) $(LDFLAGS)

test-c: $(TESTBIN)
	@fail=0; for t in $(TESTBIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

# LeakSanitizer crashes scanning oneDNN's thread-local storage: skip TLS (tests/c/lsan.supp).
# KL_DEBUG_HANDLES: a released var used again aborts with a message (tests/c/test_api.c).
asan:
	LSAN_OPTIONS=use_tls=0:suppressions=$(CURDIR)/tests/c/lsan.supp $(MAKE) BUILD=build/asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -DKL_DEBUG_HANDLES" \
	    LDFLAGS="-fsanitize=address,undefined" test-c

clean:
	rm -rf build
