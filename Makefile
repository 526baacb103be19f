# amqp-sidecar — one Makefile for build, deps, test, demo, bench and deb.
#
#   make            build/amqp-sidecar (release, -O2)
#   make asan       build/asan/amqp-sidecar (ASan + UBSan), what the e2e tests run
#   make deps       install every Debian package needed to build, test and run
#   make test       deps (if missing) + both builds + unit and end-to-end tests
#   make demo       a private RabbitMQ, a sample legacy system and the sidecar
#   make bench      throughput benchmarks against the raw rabbitmq-c limit
#   make soak       30 minutes of mixed load with broker restarts: RSS, fds, threads, losses
#   make deb        build/amqp-sidecar_<version>_<arch>.deb
#   make format     clang-format every C file

VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
PKGS     := librabbitmq jansson libconfig libmicrohttpd gnutls libcurl libxml-2.0 openssl libsystemd
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
# float-cast-overflow is not part of gcc's "undefined": name it, so that a cast of
# inf or 1e30 (a remote Retry-After, say) to an integer stops the test run too.
ASAN     := -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined,float-cast-overflow

.PHONY: docs bench-tools all asan units deps test unit e2e demo bench soak deb format format-check clean install fuzz check-deps man
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

$(B)/tests/test_bench_latency: tests/bench/latency.h
$(B)/tests/test_bench_schedule: tests/bench/schedule.h

# Benchmark tools: the raw rabbitmq-c yardsticks (without and with libcurl), a driver of our own publisher, the
# HTTP load generator (closed or open loop) and the fast local HTTP sink.
$(B)/bench/raw_amqp: tests/bench/raw_amqp.c tests/bench/latency.h tests/bench/schedule.h
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CPPFLAGS) -O2 -Wall -Wextra -Werror -o $@ $< $(LDLIBS)

$(B)/bench/raw_http_out: tests/bench/raw_http_out.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CPPFLAGS) -O2 -Wall -Wextra -Werror -o $@ $< $(LDLIBS)

$(B)/bench/loadgen: tests/bench/loadgen.c tests/bench/latency.h tests/bench/schedule.h
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) -O2 -g -Wall -Wextra -Werror -o $@ $< -lm

$(B)/bench/sink: tests/bench/sink.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) -O2 -g -Wall -Wextra -Werror -o $@ $< -lmicrohttpd

$(B)/bench/bench_publisher: tests/bench/bench_publisher.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $< $(LIB_OBJ) $(LDLIBS)

bench-tools: $(B)/bench/raw_amqp $(B)/bench/raw_http_out $(B)/bench/bench_publisher $(B)/bench/loadgen $(B)/bench/sink

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
	@$(PYTHON) tests/demo.py

bench: check-deps all bench-tools
	@tests/bench/run.sh

soak: check-deps all
	@$(PYTHON) tests/soak.py

deb: check-deps
	@packaging/build-deb.sh

fuzz:
	@tests/fuzz/run.sh

# Man pages: amqp-sidecar.conf(5)'s key reference is rendered from `amqp-sidecar keys`.
MAN_PAGES := $(B)/man/amqp-sidecar.8 $(B)/man/amqp-sidecar.conf.5
man: $(MAN_PAGES)

$(B)/man/%: packaging/man/%.in packaging/man/keys2man.sh $(B)/amqp-sidecar
	@mkdir -p $(dir $@)
	@echo "  MAN     $@"
	@packaging/man/keys2man.sh $(B)/amqp-sidecar $(VERSION) $< > $@.tmp && mv $@.tmp $@

# What the Debian package holds (packaging/debian/rules runs this with DESTDIR).
DOC := $(DESTDIR)/usr/share/doc/amqp-sidecar
install: all man
	install -D -m 0755 $(B)/amqp-sidecar $(DESTDIR)/usr/bin/amqp-sidecar
	install -D -m 0644 $(B)/man/amqp-sidecar.8 $(DESTDIR)/usr/share/man/man8/amqp-sidecar.8
	install -D -m 0644 $(B)/man/amqp-sidecar.conf.5 $(DESTDIR)/usr/share/man/man5/amqp-sidecar.conf.5
	install -D -m 0644 packaging/systemd/amqp-sidecar@.service \
		$(DESTDIR)/lib/systemd/system/amqp-sidecar@.service
	install -D -m 0644 packaging/example.conf.sample $(DESTDIR)/etc/amqp-sidecar/example.conf.sample
	install -D -m 0644 packaging/monitoring/amqp-sidecar.rules.yml \
		$(DESTDIR)/usr/share/amqp-sidecar/monitoring/amqp-sidecar.rules.yml
	install -D -m 0644 packaging/monitoring/amqp-sidecar.dashboard.json \
		$(DESTDIR)/usr/share/amqp-sidecar/monitoring/amqp-sidecar.dashboard.json
	[ ! -f README.md ] || install -D -m 0644 README.md $(DOC)/README.md
	if [ -d configs ] && [ -n "$$(ls -A configs)" ]; then \
		mkdir -p $(DOC)/examples && cp -R configs/. $(DOC)/examples/ && \
		find $(DOC)/examples -type d -exec chmod 0755 {} + && \
		find $(DOC)/examples -type f -exec chmod 0644 {} + ; fi

docs: all
	@$(PYTHON) tests/update-docs.py

FORMAT_FILES = $(SRC) $(wildcard adapter/*.h adapter/kinds/*.h transforms/*.h tests/unit/*.c tests/unit/*.h \
                 tests/bench/*.c tests/bench/*.h tests/fuzz/*.c)
format:
	clang-format -i $(FORMAT_FILES)

# What `make test` checks: every C file is as `make format` would write it.
format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build
