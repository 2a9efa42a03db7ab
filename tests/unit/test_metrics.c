/* Unit tests: smimectl stats' lib side.  The exposition format
 * (lib/metrics.c): label values escaped and made UTF-8, # HELP escaping,
 * samples, whole days; the figures (lib/db_stats.c) over a database whose
 * audit rows go through db_audit_add, the real writer's function; and the
 * file replaced atomically or left as it was. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "fixture.h"
#include "metrics.h"
#include "tap.h"

static char err[512];

/* What fn wrote to a memory stream, malloc'd. */
#define CAPTURE(out, stmt)                                 \
	do {                                               \
		size_t cap_n_ = 0;                         \
		FILE *f = open_memstream(&(out), &cap_n_); \
		stmt;                                      \
		fclose(f);                                 \
	} while (0)

static void test_labels(void)
{
	static const struct {
		const char *in, *want, *what;
	} cases[] = {
		{ "plain@banjarkota.go.id", "plain@banjarkota.go.id", "plain" },
		{ "a\\b\"c\nd", "a\\\\b\\\"c\\nd",
		  "backslash, quote, newline" },
		{ "CN=\xc3\x91o\xc3\xb1o \xe6\x97\xa5\xf0\x9f\x98\x80",
		  "CN=\xc3\x91o\xc3\xb1o \xe6\x97\xa5\xf0\x9f\x98\x80",
		  "UTF-8 of 2, 3 and 4 bytes kept" },
		{ "x\xffy", "x\xef\xbf\xbdy", "a byte that is never UTF-8" },
		{ "\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd", "an overlong NUL" },
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
		  "a surrogate" },
		{ "end\xe6\x97", "end\xef\xbf\xbd\xef\xbf\xbd",
		  "a sequence cut short" },
		{ "tab\there\r", "tab\there\r", "tab and CR left as they are" },
	};
	char *out = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CAPTURE(out, metrics_label_value(f, cases[i].in));
		is_str(out, cases[i].want, "label value: %s", cases[i].what);
		free(out);
	}
	CAPTURE(out, metrics_label_value(f, NULL));
	is_str(out, "", "label value: NULL is empty");
	free(out);
}

static void test_lines(void)
{
	const char *two[] = { "mailbox", "a\"b", "kind", "role", NULL };
	char *out = NULL;

	CAPTURE(out, metrics_family(f, "x_total", "counter", "a\\b\nc"));
	is_str(out, "# HELP x_total a\\\\b\\nc\n# TYPE x_total counter\n",
	       "HELP escapes backslash and newline");
	free(out);
	CAPTURE(out, metrics_sample(f, "x", NULL, -5));
	is_str(out, "x -5\n", "a sample without labels");
	free(out);
	CAPTURE(out, metrics_sample(f, "x", two, 7));
	is_str(out, "x{mailbox=\"a\\\"b\",kind=\"role\"} 7\n",
	       "a sample with two labels, escaped");
	free(out);
	ok(metrics_days(1000 + 2 * 86400, 1000) == 2, "2 days exactly: 2");
	ok(metrics_days(1000 + 2 * 86400 - 1, 1000) == 1,
	   "a second short of 2 days: 1");
	ok(metrics_days(999, 1000) == -1, "a second past: -1");
	ok(metrics_days(1000 - 86400, 1000) == -1, "a day past: -1");
	ok(metrics_days(1000 - 86401, 1000) == -2, "a day and a second: -2");
}

/* One audit row through the chain writer. */
static int audit(struct db *db, time_t at, const char *action,
                 const char *result)
{
	struct audit_row r;

	memset(&r, 0, sizeof(r));
	r.at = at;
	r.queue_id = "Q";
	r.from_addr = "andi@banjarkota.go.id";
	r.action = action;
	r.result = result;
	return db_audit_add(db, &r, err, sizeof(err));
}

/* A certificate row (no real certificate needed) mapped to mailbox. */
static long long cert(struct db *db, const char *mailbox, const char *kind,
                      const char *serial, time_t not_after)
{
	struct db_cert c;
	char fp[80];

	memset(&c, 0, sizeof(c));
	snprintf(fp, sizeof(fp), "FP%s", serial);
	c.kind = (char *)kind;
	c.mailbox = (char *)mailbox;
	c.subject = c.issuer = "CN=x";
	c.serial = (char *)serial;
	c.fingerprint = fp;
	c.not_before = 1;
	c.not_after = not_after;
	c.key_backend = "pem";
	c.key_location = "/k";
	c.cert_pem = "PEM";
	if (db_cert_add(db, &c, err, sizeof(err)) != 0 ||
	    db_map(db, mailbox, c.id, kind, "test", err, sizeof(err)) != 0)
		return -1;
	return c.id;
}

static const struct db_stats_count *count_of(const struct db_stats_count *c,
                                             size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(c[i].key, key) == 0)
			return &c[i];
	return NULL;
}

static void test_db(time_t now, struct db_stats *s)
{
	const struct db_stats_count *c;
	struct db *db = NULL;
	int rows = 0;

	if (db_open(fixture_db("s.db"), DB_CREATE, &db, err, sizeof(err)) !=
	    0) {
		ok(0, "database: %s", err);
		exit(1);
	}
	ok(db_stats_read(db, now - 86400, s, err, sizeof(err)) == 0 &&
	           s->nactions == 10 && s->actions[0].total == 0 &&
	           strcmp(s->actions[0].key, "signed") == 0 &&
	           s->nreasons == 0 && s->ncerts == 0 && s->ncrls == 0 &&
	           s->audit_rows == 0 && s->anchor_id == 0,
	   "an empty database: the ten actions at 0, nothing else");
	db_stats_free(s);
	rows += audit(db, now - 10, "signed", "ok") == 0;
	rows += audit(db, now - 20, "signed", "ok") == 0;
	rows += audit(db, now - 86400 - 5, "signed", "ok") == 0;
	rows += audit(db, now - 30, "unsigned",
	              "no usable certificate: no certificate mapped to "
	              "budi@banjarkota.go.id") == 0;
	rows += audit(db, now - 3 * 86400, "unsigned",
	              "no usable certificate: no certificate mapped to "
	              "cici@banjarkota.go.id") == 0;
	rows += audit(db, now - 40, "unsigned", "encryption policy: x") == 0;
	rows += audit(db, now - 50, "tempfailed", "cannot sign: key") == 0;
	rows += audit(db, now - 60, "quarantined", NULL) == 0;
	ok(rows == 8, "8 audit rows through db_audit_add (%s)", err);
	ok(cert(db, "andi@banjarkota.go.id", "individual", "1001",
	        now + 10 * 86400) > 0 &&
	           cert(db, "andi@banjarkota.go.id", "individual", "1002",
	                now + 400 * 86400) > 0 &&
	           cert(db, "sekda@banjarkota.go.id", "role", "2001",
	                now - 3600) > 0 &&
	           cert(db, "gone@banjarkota.go.id", "system", "3001",
	                now + 5 * 86400) > 0 &&
	           db_revoke_id(db, 4, "keyCompromise", now, "test", err,
	                        sizeof(err)) == 1,
	   "certificates: andi renewed (1001 superseded), sekda expired, "
	   "gone revoked (%s)",
	   err);
	ok(db_crl_add(db, "CN=A", now - 7200, now + 3600, 1, err,
	              sizeof(err)) == 0 &&
	           db_crl_add(db, "CN=A", now - 100, now + 86400, 2, err,
	                      sizeof(err)) == 0 &&
	           db_crl_add(db, "CN=A", now - 90000, now + 999999, 0, err,
	                      sizeof(err)) == 0 &&
	           db_crl_add(db, "CN=B", now - 10, 0, 0, err, sizeof(err)) ==
	                   0,
	   "CRLs: three of CN=A (the newest thisUpdate in the middle), one "
	   "of CN=B without nextUpdate");
	ok(db_audit_anchor_add(db, 5, "ab", (const unsigned char *)"t", 1,
	                       now - 500, "http://tsa", err, sizeof(err)) > 0 &&
	           db_audit_anchor_add(db, 6, "cd", (const unsigned char *)"t",
	                               1, now - 400, "http://tsa", err,
	                               sizeof(err)) > 0,
	   "two anchors, the newest over row 6");

	ok(db_stats_read(db, now - 86400, s, err, sizeof(err)) == 0,
	   "db_stats_read (%s)", err);
	c = count_of(s->actions, s->nactions, "signed");
	ok(c && c->total == 3 && c->recent == 2, "signed: 3 in all, 2 in 24 h");
	c = count_of(s->actions, s->nactions, "unsigned");
	ok(c && c->total == 3 && c->recent == 2,
	   "unsigned: 3 in all, 2 in 24 h");
	c = count_of(s->actions, s->nactions, "tempfailed");
	ok(c && c->total == 1 && c->recent == 1, "tempfailed: 1");
	ok(s->nactions == 11 &&
	           strcmp(s->actions[10].key, "quarantined") == 0 &&
	           s->actions[10].total == 1,
	   "an action the list does not know comes after it");
	c = count_of(s->reasons, s->nreasons, "no usable certificate");
	ok(s->nreasons == 2 && c && c->total == 2 && c->recent == 1,
	   "reasons cut at ': ': the mailboxes make one reason (2, 1 in "
	   "24 h)");
	c = count_of(s->reasons, s->nreasons, "encryption policy");
	ok(c && c->total == 1, "encryption policy: 1");
	ok(s->ncerts == 2 && strcmp(s->certs[0].serial, "1002") == 0 &&
	           s->certs[0].not_after == now + 400 * 86400 &&
	           strcmp(s->certs[1].mailbox, "sekda@banjarkota.go.id") == 0 &&
	           strcmp(s->certs[1].kind, "role") == 0,
	   "the certificates in use: andi's new one and sekda's, not the "
	   "superseded or the revoked one");
	ok(s->ncrls == 2 && strcmp(s->crls[0].issuer, "CN=A") == 0 &&
	           s->crls[0].this_update == now - 100 &&
	           s->crls[0].next_update == now + 86400 &&
	           s->crls[1].next_update == 0,
	   "the newest CRL of each issuer");
	ok(s->audit_rows == 8 && s->audit_last_id == 8 && s->anchor_id == 2 &&
	           s->anchor_audit_id == 6 && s->anchor_gen_time == now - 400,
	   "chain of 8 rows, the newest anchor over row 6");
	db_close(db);
}

/* The line of out that starts with prefix, or NULL. */
static const char *line(const char *out, const char *prefix)
{
	for (const char *p = out; p && *p;
	     p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			return p;
	return NULL;
}

static void test_write(time_t now, const struct db_stats *s)
{
	struct metrics_up up = { 1, 42 };
	struct db_stats none;
	char *out = NULL;
	int rc = 0;

	CAPTURE(out, rc = metrics_write(f, s, now, &up));
	ok(rc == 0 && out[strlen(out) - 1] == '\n', "metrics_write");
	ok(line(out, "smime_milter_messages_total{action=\"signed\"} 3\n") &&
	           line(out, "smime_milter_messages_24h{action=\"signed\"} "
	                     "2\n") &&
	           line(out, "# TYPE smime_milter_messages_total counter\n") &&
	           line(out, "# TYPE smime_milter_messages_24h gauge\n"),
	   "messages: the total a counter, the 24 h a gauge");
	ok(line(out, "smime_milter_unsigned_messages_total{reason=\"no usable "
	             "certificate\"} 2\n") != NULL,
	   "unsigned by reason");
	ok(line(out, "smime_milter_certificate_expiry_seconds{mailbox=\"sekda@"
	             "banjarkota.go.id\",kind=\"role\",serial=\"2001\"} "
	             "-3600\n") &&
	           line(out, "smime_milter_certificate_expiry_min_seconds "
	                     "-3600\n"),
	   "expiry per certificate and the minimum, negative once expired");
	ok(line(out, "smime_milter_crl_age_seconds{issuer=\"CN=A\"} 100\n") &&
	           line(out, "smime_milter_crl_next_update_seconds{issuer="
	                     "\"CN=A\"} 86400\n") &&
	           line(out, "smime_milter_crl_age_seconds{issuer=\"CN=B\"} "
	                     "10\n") &&
	           !line(out, "smime_milter_crl_next_update_seconds{issuer="
	                      "\"CN=B\"}"),
	   "CRL age and nextUpdate (none for an issuer without one)");
	ok(line(out, "smime_milter_audit_chain_length{node=\"\"} 8\n") &&
	           line(out, "smime_milter_audit_unanchored_rows 2\n") &&
	           line(out,
	                "smime_milter_audit_last_anchor_timestamp_seconds ") &&
	           line(out, "smime_milter_up 1\n"),
	   "chain, unanchored rows, anchor, up");
	free(out);

	memset(&none, 0, sizeof(none));
	up.up = 0;
	CAPTURE(out, rc = metrics_write(f, &none, now, &up));
	ok(rc == 0 && line(out, "smime_milter_certificates 0\n") &&
	           !line(out, "# HELP smime_milter_certificate_expiry") &&
	           !line(out, "# HELP smime_milter_crl_") &&
	           !line(out, "# HELP smime_milter_audit_last_anchor") &&
	           !line(out, "# HELP smime_milter_messages") &&
	           line(out, "smime_milter_up 0\n"),
	   "nothing to show: those families are left out, up 0");
	free(out);
}

/* The content of path (malloc'd; NULL when unreadable). */
static char *slurp(const char *path)
{
	char buf[256];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strdup(buf);
}

static void test_file(void)
{
	const char *path = fixture_path("m.prom");
	char tmp[512], *got, out[256];
	struct stat st;
	int fd;

	fixture_write(path, "old\n", 0644);
	fd = metrics_file_open(path, tmp, sizeof(tmp), err, sizeof(err));
	ok(fd >= 0 && strstr(tmp, "/.m.prom.") != NULL && fstat(fd, &st) == 0 &&
	           (st.st_mode & 0777) == 0644,
	   "the temp file: .m.prom.XXXXXX beside it, mode 0644");
	ok(write(fd, "new\n", 4) == 4 &&
	           metrics_file_commit(fd, tmp, path, 1, err, sizeof(err)) == 0,
	   "commit");
	got = slurp(path);
	is_str(got, "new\n", "the file has the new content");
	free(got);
	ok(access(tmp, F_OK) != 0, "the temp file is gone (renamed)");

	fd = metrics_file_open(path, tmp, sizeof(tmp), err, sizeof(err));
	ok(fd >= 0 && write(fd, "half", 4) == 4 &&
	           metrics_file_commit(fd, tmp, path, 0, err, sizeof(err)) != 0,
	   "a failed content is not committed");
	got = slurp(path);
	is_str(got, "new\n", "... the old content stays");
	free(got);
	ok(access(tmp, F_OK) != 0, "... and the temp file is removed");
	ok(fixture_sh_out(out, sizeof(out), "ls -A '%s' | grep -c prom",
	                  fixture_path("")) &&
	           strcmp(out, "1") == 0,
	   "one .prom file in the directory, no leftovers (%s)", out);

	ok(metrics_file_open(fixture_path("nodir/m.prom"), tmp, sizeof(tmp),
	                     err, sizeof(err)) == -1 &&
	           strstr(err, "cannot create a file in") &&
	           strstr(err, "nodir") &&
	           strstr(err, "No such file or directory"),
	   "a missing directory: said plainly (%s)", err);
	ok(metrics_file_open(fixture_path("x/"), tmp, sizeof(tmp), err,
	                     sizeof(err)) == -1 &&
	           strstr(err, "not a file name"),
	   "a path ending in / is refused (%s)", err);
}

int main(void)
{
	time_t now = time(NULL);
	struct db_stats s;

	fixture_dir("metrics");
	test_labels();
	test_lines();
	test_db(now, &s);
	test_write(now, &s);
	db_stats_free(&s);
	db_stats_free(NULL);
	test_file();
	return fixture_end(tap_done());
}
