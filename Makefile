# smime-milter -- plain make; pkg-config for the libraries, -lmilter for libmilter.
PREFIX    ?= /usr/local
SBINDIR   ?= $(PREFIX)/sbin
MANDIR    ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
DESTDIR   ?=

CC        ?= cc
PKGS      := openssl sqlite3 libconfig libpq
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) p11-kit-1)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

CFLAGS    ?= -O2 -g
CFLAGS    += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter \
             -Wformat=2 -Wno-format-truncation -Wno-format-nonliteral -fno-strict-aliasing -Ilib $(PKG_CFLAGS)
LDLIBS    += $(PKG_LIBS) -lcurl -lpthread

ifeq ($(SANITIZE),1)
CFLAGS    += -fsanitize=address,undefined -fno-omit-frame-pointer -O1
LDFLAGS   += -fsanitize=address,undefined
endif

# The compiler and flags of the last build: objects depend on this file,
# so "make check SANITIZE=1" after a plain build (or the other way round)
# rebuilds everything instead of linking a mix of the two.
.DEFAULT_GOAL := all
BUILD_FLAGS := $(CC) $(CFLAGS) $(LDFLAGS)
.build-flags: FORCE
	@echo '$(BUILD_FLAGS)' | cmp -s - $@ || echo '$(BUILD_FLAGS)' >$@
.PHONY: FORCE
FORCE:

LIB_SRCS  := $(wildcard lib/*.c)
LIB_OBJS  := $(LIB_SRCS:.c=.o)
LIB_HDRS  := $(wildcard lib/*.h)
MILTER_SRCS := $(wildcard milter/*.c)
MILTER_OBJS := $(MILTER_SRCS:.c=.o)
ADMIN_SRCS  := $(wildcard admin/*.c)
ADMIN_OBJS  := $(ADMIN_SRCS:.c=.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:.c=)
TOOL_SRCS := $(wildcard tests/bench/*.c tests/lib/*.c)
TOOL_BINS := $(TOOL_SRCS:.c=)

PROGS     := milter/smime-milter admin/smimectl

.PHONY: all deps check test-bins demo install clean bench soak
all: $(PROGS)

# Debian 12 packages for building, the demo and the tests (as root)
deps:
	sh contrib/install-deps.sh

# Made anew each time: "ar rcs" on an old archive would keep the members of
# source files that were split or removed, and the linker would take the
# stale copy of a symbol.
lib/libsmime.a: $(LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(LIB_OBJS) $(MILTER_OBJS) $(ADMIN_OBJS): $(LIB_HDRS) $(wildcard milter/*.h admin/*.h) .build-flags

milter/smime-milter: $(MILTER_OBJS) lib/libsmime.a
	$(CC) $(LDFLAGS) -o $@ $(MILTER_OBJS) lib/libsmime.a -lmilter $(LDLIBS)

admin/smimectl: $(ADMIN_OBJS) lib/libsmime.a
	$(CC) $(LDFLAGS) -o $@ $(ADMIN_OBJS) lib/libsmime.a $(LDLIBS)

# Every unit test links the shared fixture (tests/unit/fixture.h).
UNIT_FIXTURE := tests/unit/fixture.o
$(UNIT_FIXTURE): tests/unit/fixture.c tests/unit/fixture.h $(LIB_HDRS) .build-flags
	$(CC) $(CFLAGS) -Itests/unit -c -o $@ $<

tests/unit/test_%: tests/unit/test_%.c tests/unit/tap.h tests/unit/fixture.h $(UNIT_FIXTURE) lib/libsmime.a .build-flags
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(UNIT_FIXTURE) lib/libsmime.a $(LDLIBS)

# the -t mode's header split (milter/offline.c needs no libmilter to link)
tests/unit/test_offline: tests/unit/test_offline.c tests/unit/tap.h milter/offline.o lib/libsmime.a .build-flags
	$(CC) $(CFLAGS) -Itests/unit -Imilter $(LDFLAGS) -Wl,--wrap=realloc -o $@ $< milter/offline.o lib/libsmime.a $(LDLIBS)

tests/bench/%: tests/bench/%.c lib/libsmime.a .build-flags
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< lib/libsmime.a $(LDLIBS)

tests/lib/%: tests/lib/%.c lib/libsmime.a .build-flags
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< lib/libsmime.a $(LDLIBS)

# the recording milter of tests/e2e/milter-order.sh: libmilter, no lib/
tests/lib/recmilter: tests/lib/recmilter.c .build-flags
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lmilter -lpthread

test-bins: $(PROGS) $(UNIT_BINS) $(TOOL_BINS)

check: test-bins
	sh tests/run.sh

demo: all
	sh tests/demo.sh

bench: test-bins
	sh tests/bench/run.sh

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	        $(DESTDIR)$(SYSCONFDIR)/smime-milter
	install -m 0755 milter/smime-milter admin/smimectl $(DESTDIR)$(SBINDIR)/
	install -m 0644 man/smime-milter.8 man/smimectl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/smime-milter.conf.5 $(DESTDIR)$(MANDIR)/man5/
	test -e $(DESTDIR)$(SYSCONFDIR)/smime-milter/smime-milter.conf || \
	  install -m 0640 conf/smime-milter.conf $(DESTDIR)$(SYSCONFDIR)/smime-milter/smime-milter.conf

clean:
	rm -f lib/*.o lib/libsmime.a milter/*.o admin/*.o $(PROGS) $(UNIT_BINS) $(UNIT_FIXTURE) $(TOOL_BINS) .build-flags
	rm -rf tests/fuzz/obj $(FUZZ_BINS)

# ---- fuzzing (clang + libFuzzer; not needed by `make check`) ----------
# make fuzz FUZZ_SECONDS=N   builds tests/fuzz/fuzz_mime, fuzz_eom, fuzz_cmsdec and
# fuzz_inbound with clang -fsanitize=fuzzer,address,undefined (lib/ compiled
# again into tests/fuzz/obj, the normal build is untouched) and runs each for
# N seconds on a copy of its seed corpus; see tests/fuzz/README.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -O1 -g -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE -Ilib $(PKG_CFLAGS)
FUZZ_SAN     := address,undefined
FUZZ_OBJS    := $(patsubst lib/%.c,tests/fuzz/obj/%.o,$(LIB_SRCS))
FUZZ_BINS    := tests/fuzz/fuzz_mime tests/fuzz/fuzz_eom tests/fuzz/fuzz_cmsdec tests/fuzz/fuzz_inbound \
                tests/fuzz/fuzz_evidence
.SECONDARY: $(FUZZ_OBJS)

.PHONY: fuzz fuzz-bins
tests/fuzz/obj/%.o: lib/%.c $(LIB_HDRS)
	@mkdir -p tests/fuzz/obj
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -c -o $@ $<

tests/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $< $(FUZZ_OBJS) $(LDLIBS)

# fuzz_eom splits its input with the -t mode's own code: milter/offline.c
# needs no libmilter at link time (only mfapi.h for the callback table)
tests/fuzz/obj/milter_offline.o: milter/offline.c milter/offline.h $(LIB_HDRS)
	@mkdir -p tests/fuzz/obj
	$(FUZZ_CC) $(FUZZ_FLAGS) -Imilter -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -c -o $@ $<

tests/fuzz/fuzz_eom: tests/fuzz/fuzz_eom.c $(FUZZ_OBJS) tests/fuzz/obj/milter_offline.o
	$(FUZZ_CC) $(FUZZ_FLAGS) -Imilter -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $< $(FUZZ_OBJS) tests/fuzz/obj/milter_offline.o $(LDLIBS)

# fuzz_inbound splits its input the same way
tests/fuzz/fuzz_inbound: tests/fuzz/fuzz_inbound.c $(FUZZ_OBJS) tests/fuzz/obj/milter_offline.o
	$(FUZZ_CC) $(FUZZ_FLAGS) -Imilter -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $< $(FUZZ_OBJS) tests/fuzz/obj/milter_offline.o $(LDLIBS)

# ... and is also built without libFuzzer, with the normal compiler and
# flags (SANITIZE=1 too), as a replay driver that `make check` runs over its
# seeds and regressions (tests/milter/fuzz-inbound.sh); it is one of
# TOOL_BINS, so test-bins builds it and clean removes it
tests/lib/fuzz_replay_inbound: tests/lib/fuzz_replay_inbound.c tests/fuzz/fuzz_inbound.c milter/offline.o lib/libsmime.a .build-flags
	$(CC) $(CFLAGS) -Imilter $(LDFLAGS) -o $@ $< tests/fuzz/fuzz_inbound.c milter/offline.o lib/libsmime.a $(LDLIBS)

fuzz-bins: $(FUZZ_BINS)

fuzz: all fuzz-bins
	sh tests/fuzz/run.sh $(FUZZ_SECONDS)

# Soak test (not part of check): SOAK_MESSAGES messages from SOAK_CLIENTS
# parallel SMTP clients through a private Postfix; see tests/soak/soak.sh.
SOAK_MESSAGES ?= 20000
SOAK_CLIENTS  ?= 16
soak: all
	SOAK_MESSAGES=$(SOAK_MESSAGES) SOAK_CLIENTS=$(SOAK_CLIENTS) sh tests/soak/soak.sh
