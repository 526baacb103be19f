# amqp-sidecar — one Makefile for build, deps, test, demo, bench and deb.
#
#   make            build/amqp-sidecar (release, -O2)
#   make asan       build/asan/amqp-sidecar (ASan + UBSan), what the e2e tests run
#   make deps       install every Debian package needed to build, test and run
#   make test       deps (if missing) + both builds + unit and end-to-end tests
#   make demo       a private RabbitMQ, a sample legacy system and the sidecar
#   make bench      throughput benchmarks against the raw rabbitmq-c limit
#   make deb        build/amqp-sidecar_<version>_<arch>.deb
#   make format     clang-format every C file

VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
PKGS     := librabbitmq jansson libconfig libmicrohttpd libcurl libxml-2.0 openssl libsystemd
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wno-unused-parameter -Wformat=2 -Wno-format-nonliteral
CPPFLAGS += -D_GNU_SOURCE -DSIDECAR_VERSION='"$(VERSION)"' -Iadapter -Itransforms \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ljq -lpthread -lm
PYTHON   := /usr/bin/python3

SRC      := $(wildcard adapter/*.c adapter/kinds/*.c transforms/*.c)
LIB_SRC  := $(filter-out adapter/main.c,$(SRC))
UNIT_SRC := $(wildcard tests/unit/test_*.c)

# Two flavours share one rule set: B is the output directory, FLAGS the extra flags.
B        ?= build
FLAGS    ?=
OBJ      := $(patsubst %.c,$(B)/obj/%.o,$(SRC))
LIB_OBJ  := $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRC))
UNITS    := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
ASAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

.PHONY: all asan units deps test unit e2e demo bench deb format clean install fuzz check-deps
all: $(B)/amqp-sidecar

ASAN_DIR ?= build/asan
asan:
	@$(MAKE) --no-print-directory B=$(ASAN_DIR) FLAGS="$(ASAN)" CFLAGS="-O1 -g" all units

units: $(UNITS)

$(B)/amqp-sidecar: $(OBJ)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(FLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) $(FLAGS) $(WARN) -MMD -MP -c -o $@ $<

$(B)/tests/%: tests/unit/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CPPFLAGS) $(CFLAGS) $(FLAGS) $(WARN) -o $@ $< $(LIB_OBJ) $(LDFLAGS) $(LDLIBS) -lcmocka

-include $(OBJ:.o=.d)

deps:
	@tests/deps.sh install

check-deps:
	@tests/deps.sh check || tests/deps.sh install

test: check-deps
	@$(MAKE) --no-print-directory all units
	@$(MAKE) --no-print-directory asan
	@tests/run-all

unit: all units
	@tests/run-all --unit-only

e2e: all asan
	@tests/run-all --e2e-only

demo: check-deps all
	@tests/demo.sh

bench: check-deps all
	@tests/bench/run.sh

deb: check-deps
	@packaging/build-deb.sh

fuzz:
	@tests/fuzz/run.sh

install: all
	install -D -m 0755 build/amqp-sidecar $(DESTDIR)/usr/bin/amqp-sidecar

format:
	clang-format -i $(SRC) $(wildcard adapter/*.h adapter/kinds/*.h transforms/*.h tests/unit/*.c tests/unit/*.h)

clean:
	rm -rf build
