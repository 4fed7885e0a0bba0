# Makefile for cachebridge (PGXS)

MODULE_big = cachebridge
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
PGFILEDESC = "cachebridge - Redis cache consistency and sharding inside PostgreSQL"

EXTENSION = cachebridge
DATA = cachebridge--1.0.sql cachebridge--1.0--1.1.sql cachebridge--1.1--1.2.sql cachebridge--1.2--1.3.sql

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

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: test bench
test:
	bash test/run.sh

bench:
	bash test/bench/run.sh
