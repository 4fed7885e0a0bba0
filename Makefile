# Makefile for cachebridge (PGXS)

MODULE_big = cachebridge
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
PGFILEDESC = "cachebridge - Redis cache consistency and sharding inside PostgreSQL"

EXTENSION = cachebridge
DATA = cachebridge--1.0.sql cachebridge--1.0--1.1.sql cachebridge--1.1--1.2.sql cachebridge--1.2--1.3.sql cachebridge--1.3--1.4.sql

# Every file in sql/ is a regression test; the extension is created by pg_regress.
REGRESS = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --load-extension=cachebridge

# Isolation specs live in test/specs, their expected output in test/expected.
ISOLATION = $(sort $(basename $(notdir $(wildcard test/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test --load-extension=cachebridge

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers
SHLIB_LINK = -lhiredis -lssl -lcrypto -lanl

# The tests flush, write to and reset the Redis server and the statistics
# of the server they run against, so "make installcheck" against a running
# server is refused: test/run.sh runs them against a PostgreSQL and a
# redis-server of its own.  (REGRESS_PREP is PGXS' hook run before the
# regression and isolation tests.)
REGRESS_PREP = cb-refuse-installcheck

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: test bench cb-refuse-installcheck
cb-refuse-installcheck:
	@echo "make installcheck is refused: cachebridge's tests flush, write to and reset" >&2
	@echo "the Redis server and the statistics of the server they run against." >&2
	@echo "Run them against servers of their own (started and stopped by the script):" >&2
	@echo "    bash test/run.sh regress isolation    (as root, or with sudo; or: make test)" >&2
	@exit 1

test:
	bash test/run.sh

bench:
	bash test/bench/run.sh
