# smime-milter -- plain make; pkg-config for the libraries, -lmilter for libmilter.
PREFIX    ?= /usr/local
SBINDIR   ?= $(PREFIX)/sbin
MANDIR    ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
# systemd reads units from /usr/local/lib/systemd/system too; the Debian
# package puts them in /lib/systemd/system (debian/rules)
UNITDIR   ?= $(PREFIX)/lib/systemd/system
# the state directory the defaults of database, key_dir and temp_dir name
# (lib/config_keys.c), so it is not under PREFIX
STATEDIR  := /var/lib/smime-milter
SMIME_USER := smime-milter
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

.PHONY: all deps check test-bins demo install deb clean bench soak
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

# The state directories are made with their modes (0750, keys/ and tmp/
# 0700).  Their owner, and the group of a newly installed configuration
# file, become smime-milter only when installing for real (no DESTDIR) as
# root and that user exists: create it first (INSTALL, section 3), or run
# "make install" again after.  A staging tree (DESTDIR) leaves owners to the
# package (debian/smime-milter.postinst).  /run/smime-milter is made by the
# unit (RuntimeDirectory=).  Units get the SBINDIR of this install.
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	        $(DESTDIR)$(SYSCONFDIR)/smime-milter $(DESTDIR)$(UNITDIR)
	install -m 0755 milter/smime-milter admin/smimectl $(DESTDIR)$(SBINDIR)/
	install -m 0644 man/smime-milter.8 man/smimectl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/smime-milter.conf.5 $(DESTDIR)$(MANDIR)/man5/
	set -e; for u in contrib/smime-milter.service contrib/smimectl-*.service \
	        contrib/smimectl-*.timer; do \
	  sed 's|/usr/local/sbin/|$(SBINDIR)/|g' $$u >$(DESTDIR)$(UNITDIR)/$${u#contrib/}; \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$${u#contrib/}; \
	done
	install -d -m 0750 $(DESTDIR)$(STATEDIR)
	install -d -m 0700 $(DESTDIR)$(STATEDIR)/keys $(DESTDIR)$(STATEDIR)/tmp
	set -e; conf=$(DESTDIR)$(SYSCONFDIR)/smime-milter/smime-milter.conf; \
	if [ -e $$conf ]; then new=; else new=1; \
	  install -m 0640 conf/smime-milter.conf $$conf; fi; \
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && id $(SMIME_USER) >/dev/null 2>&1; then \
	  chown $(SMIME_USER):$(SMIME_USER) $(STATEDIR) $(STATEDIR)/keys $(STATEDIR)/tmp; \
	  [ -z "$$new" ] || chgrp $(SMIME_USER) $$conf; \
	elif [ -z "$(DESTDIR)" ]; then \
	  echo "make install: no user $(SMIME_USER) (or not root): $(STATEDIR) stays root's;" \
	       "create the user (INSTALL, section 3) and run make install again"; \
	fi

# The Debian package, built by dpkg-buildpackage in a copy of this tree
# under a temporary directory (the tree gets no build files), and the
# .deb, .changes and .buildinfo moved to DEB_DIR.
DEB_DIR   ?= deb
deb:
	@set -e; tmp=$$(mktemp -d /tmp/smime-milter-deb.XXXXXX); \
	trap 'rm -rf "$$tmp"' EXIT; \
	v=$$(sed -n 's/^#define SMIME_VERSION "\(.*\)"/\1/p' lib/util.h); \
	d=$$(dpkg-parsechangelog -S Version); \
	if [ "$$v" != "$$d" ]; then \
	  echo "make deb: debian/changelog is at $$d, lib/util.h at $$v" >&2; exit 1; fi; \
	mkdir "$$tmp/smime-milter-$$v"; \
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git ls-files -z -co --exclude-standard | grep -zv '^$(DEB_DIR)/' | \
	    xargs -0 tar -cf - | tar -xf - -C "$$tmp/smime-milter-$$v"; \
	else \
	  tar -cf - --exclude=./.git --exclude=./$(DEB_DIR) . | tar -xf - -C "$$tmp/smime-milter-$$v"; \
	fi; \
	(cd "$$tmp/smime-milter-$$v" && dpkg-buildpackage -us -uc -b) >"$$tmp/build.log" 2>&1 || \
	  { tail -40 "$$tmp/build.log" >&2; echo "make deb: dpkg-buildpackage failed" >&2; exit 1; }; \
	mkdir -p $(DEB_DIR); \
	mv "$$tmp"/*.deb "$$tmp"/*.changes "$$tmp"/*.buildinfo $(DEB_DIR)/; \
	cp "$$tmp/build.log" $(DEB_DIR)/build.log; \
	ls $(DEB_DIR)/*.deb

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
