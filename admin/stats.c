/*
 * stats -- smimectl stats [--prometheus FILE] [--json]: the gateway's
 * health for monitoring.  Counts of the audit log by action (last 24 h and
 * in all), unsigned mail by reason, days to expiry of the certificates in
 * use, CRL age and time to nextUpdate, the audit chain and its newest
 * anchor, and whether the milter runs.  A table for people by default,
 * one JSON object with --json, node_exporter's textfile format with
 * --prometheus (replaced atomically; nothing on stdout unless --json).
 *
 * The figures are read as the milter's user (become_user), but the file
 * is written as the caller: node_exporter's directory is root's, so a
 * child process drops privileges and fills the temp file the parent made,
 * and the parent renames it into place.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "smimectl.h"

#define DAY 86400

/* What the figures are about: when, and whether the milter is up. */
struct stats_ctx {
	time_t now;
	const char *pidfile;
	struct metrics_up up;
	char why[300]; /* why it is down, in words */
};

/* Is the process of the pidfile alive?  kill(pid, 0): EPERM still means
 * it exists. */
static void milter_check(struct stats_ctx *x)
{
	FILE *f;
	long pid = 0;

	x->up.up = 0;
	x->up.pid = 0;
	if (x->pidfile == NULL) {
		snprintf(x->why, sizeof(x->why), "no pidfile configured");
		return;
	}
	if ((f = fopen(x->pidfile, "r")) == NULL) {
		snprintf(x->why, sizeof(x->why), "%s: %s", x->pidfile,
		         strerror(errno));
		return;
	}
	if (fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
		snprintf(x->why, sizeof(x->why), "%s: no pid in it",
		         x->pidfile);
		pid = 0;
	}
	fclose(f);
	if (pid == 0)
		return;
	x->up.pid = pid;
	if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
		x->up.up = 1;
	else
		snprintf(x->why, sizeof(x->why), "pid %ld from %s: %s", pid,
		         x->pidfile, strerror(errno));
}

/* The rejected and tempfailed rows: mail the milter failed. */
static void errors_of(const struct db_stats *s, long long *total,
                      long long *recent)
{
	*total = *recent = 0;
	for (size_t i = 0; i < s->nactions; i++)
		if (strcmp(s->actions[i].key, "rejected") == 0 ||
		    strcmp(s->actions[i].key, "tempfailed") == 0) {
			*total += s->actions[i].total;
			*recent += s->actions[i].recent;
		}
}

/* A span of seconds for people: "3d 04h", "2h 05m", "-1d 00h". */
static const char *span(long long secs, char *buf, size_t len)
{
	const char *sign = secs < 0 ? "-" : "";
	long long a = secs < 0 ? -secs : secs;

	if (a >= DAY)
		snprintf(buf, len, "%s%lldd %02lldh", sign, a / DAY,
		         a % DAY / 3600);
	else
		snprintf(buf, len, "%s%lldh %02lldm", sign, a / 3600,
		         a % 3600 / 60);
	return buf;
}

/* ---- text -------------------------------------------------------------- */

/* s for a terminal: control characters (a newline in an issuer's name,
 * an escape sequence) become '?'.  Returns buf. */
static const char *plain(const char *s, char *buf, size_t len)
{
	size_t i = 0;

	for (; s && *s && i + 1 < len; s++, i++)
		buf[i] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
	buf[i] = '\0';
	return buf;
}

static void text_counts(const char *title, const struct db_stats_count *c,
                        size_t n)
{
	char k[256];

	printf("\n%-32s %10s %10s\n", title, "last 24 h", "total");
	for (size_t i = 0; i < n; i++)
		printf("  %-30s %10lld %10lld\n", plain(c[i].key, k, sizeof(k)),
		       c[i].recent, c[i].total);
}

static void text_certs(const struct db_stats *s, time_t now)
{
	char na[40], mb[256], se[128];
	long min = 0;

	printf("\ncertificates in use (active, mapped): %zu\n", s->ncerts);
	if (s->ncerts == 0)
		return;
	printf("  %-32s %-10s %-18s %-23s %6s\n", "mailbox", "kind", "serial",
	       "not after", "days");
	for (size_t i = 0; i < s->ncerts; i++) {
		const struct db_stats_cert *c = &s->certs[i];
		long d = metrics_days(c->not_after, now);

		if (i == 0 || d < min)
			min = d;
		printf("  %-32s %-10s %-18s %-23s %6ld\n",
		       plain(c->mailbox, mb, sizeof(mb)), c->kind,
		       plain(c->serial, se, sizeof(se)),
		       time_fmt(c->not_after, na, sizeof(na)), d);
	}
	printf("  the first expires in %ld day%s\n", min, min == 1 ? "" : "s");
}

static void text_crls(const struct db_stats *s, time_t now)
{
	char tu[40], nu[40], age[32], left[32], is[1024];

	printf("\nCRLs (the newest of each issuer): %zu\n", s->ncrls);
	for (size_t i = 0; i < s->ncrls; i++) {
		const struct db_stats_crl *c = &s->crls[i];
		printf("  %s\n    thisUpdate %s (%s ago), nextUpdate %s",
		       plain(c->issuer, is, sizeof(is)),
		       time_fmt(c->this_update, tu, sizeof(tu)),
		       span((long long)now - c->this_update, age, sizeof(age)),
		       c->next_update ? time_fmt(c->next_update, nu, sizeof(nu))
		                      : "none");
		if (c->next_update)
			printf(" (%s %s)",
			       c->next_update < now ? "STALE for" : "in",
			       span(c->next_update < now
			                    ? (long long)now - c->next_update
			                    : (long long)c->next_update - now,
			            left, sizeof(left)));
		putchar('\n');
	}
}

static void out_text(const struct db_stats *s, const struct stats_ctx *x)
{
	long long et, er;
	char t[40];

	printf("smime-milter stats, %s\n", time_fmt(x->now, t, sizeof(t)));
	if (x->up.up)
		printf("milter: up (pid %ld)\n", x->up.pid);
	else
		printf("milter: DOWN (%s)\n", x->why);
	text_counts("messages", s->actions, s->nactions);
	errors_of(s, &et, &er);
	printf("  %-30s %10lld %10lld\n", "errors (rejected + tempfailed)", er,
	       et);
	if (s->nreasons)
		text_counts("unsigned, by reason", s->reasons, s->nreasons);
	text_certs(s, x->now);
	text_crls(s, x->now);
	printf("\naudit log: %lld row%s, head id %lld\n", s->audit_rows,
	       s->audit_rows == 1 ? "" : "s", s->audit_last_id);
	for (size_t i = 0; i < s->nnodes; i++)
		printf("  node \"%s\": %lld row(s), head id %lld, %lld after "
		       "its newest anchor\n",
		       s->nodes[i].node, s->nodes[i].rows, s->nodes[i].last_id,
		       s->nodes[i].unanchored);
	if (s->anchor_id > 0)
		printf("  last anchor: id %lld over row %lld, genTime %s; %lld "
		       "row(s) after it\n",
		       s->anchor_id, s->anchor_audit_id,
		       time_fmt(s->anchor_gen_time, t, sizeof(t)),
		       s->audit_unanchored);
	else
		printf("  no anchor yet\n");
}

/* ---- JSON -------------------------------------------------------------- */

static void json_counts(const char *name, const struct db_stats_count *c,
                        size_t n, int as_object)
{
	printf(",\n \"%s\": %c", name, as_object ? '{' : '[');
	for (size_t i = 0; i < n; i++) {
		printf("%s\n  ", i ? "," : "");
		if (as_object) {
			json_str(c[i].key);
			printf(": {");
		} else {
			printf("{\"reason\": ");
			json_str(c[i].key);
			printf(", ");
		}
		printf("\"total\": %lld, \"last_24h\": %lld}", c[i].total,
		       c[i].recent);
	}
	printf("%s%c", n ? "\n " : "", as_object ? '}' : ']');
}

static void json_certs(const struct db_stats *s, time_t now)
{
	long min = 0;
	char na[40];

	printf(",\n \"certificates\": [");
	for (size_t i = 0; i < s->ncerts; i++) {
		const struct db_stats_cert *c = &s->certs[i];
		long d = metrics_days(c->not_after, now);

		if (i == 0 || d < min)
			min = d;
		printf("%s\n  {\"mailbox\": ", i ? "," : "");
		json_str(c->mailbox);
		printf(", \"kind\": ");
		json_str(c->kind);
		printf(", \"serial\": ");
		json_str(c->serial);
		printf(", \"not_after\": ");
		json_str(time_fmt(c->not_after, na, sizeof(na)));
		printf(", \"expiry_seconds\": %lld, \"expiry_days\": %ld}",
		       (long long)c->not_after - now, d);
	}
	printf("%s],\n \"certificate_expiry_min_days\": ",
	       s->ncerts ? "\n " : "");
	if (s->ncerts)
		printf("%ld", min);
	else
		printf("null");
}

static void json_crls(const struct db_stats *s, time_t now)
{
	char tu[40], nu[40];

	printf(",\n \"crls\": [");
	for (size_t i = 0; i < s->ncrls; i++) {
		const struct db_stats_crl *c = &s->crls[i];
		printf("%s\n  {\"issuer\": ", i ? "," : "");
		json_str(c->issuer);
		printf(", \"this_update\": ");
		json_str(time_fmt(c->this_update, tu, sizeof(tu)));
		printf(", \"next_update\": ");
		json_str(c->next_update
		                 ? time_fmt(c->next_update, nu, sizeof(nu))
		                 : NULL);
		printf(", \"age_seconds\": %lld, \"next_update_seconds\": ",
		       (long long)now - c->this_update);
		if (c->next_update)
			printf("%lld}", (long long)c->next_update - now);
		else
			printf("null}");
	}
	printf("%s]", s->ncrls ? "\n " : "");
}

static void out_json(const struct db_stats *s, const struct stats_ctx *x)
{
	long long et, er;
	char t[40];

	printf("{\"generated_at\": ");
	json_str(time_fmt(x->now, t, sizeof(t)));
	printf(", \"generated\": %lld,\n \"milter\": {\"up\": %s, \"pid\": ",
	       (long long)x->now, x->up.up ? "true" : "false");
	if (x->up.pid)
		printf("%ld", x->up.pid);
	else
		printf("null");
	printf(", \"pidfile\": ");
	json_str(x->pidfile);
	printf(", \"why_down\": ");
	json_str(x->up.up ? NULL : x->why);
	putchar('}');
	json_counts("messages", s->actions, s->nactions, 1);
	errors_of(s, &et, &er);
	printf(",\n \"errors\": {\"total\": %lld, \"last_24h\": %lld}", et, er);
	json_counts("unsigned_reasons", s->reasons, s->nreasons, 0);
	json_certs(s, x->now);
	json_crls(s, x->now);
	printf(",\n \"audit\": {\"chain_length\": %lld, \"last_id\": %lld, "
	       "\"last_anchor\": ",
	       s->audit_rows, s->audit_last_id);
	if (s->anchor_id > 0) {
		printf("{\"id\": %lld, \"audit_id\": %lld, \"gen_time\": ",
		       s->anchor_id, s->anchor_audit_id);
		json_str(time_fmt(s->anchor_gen_time, t, sizeof(t)));
		printf(", \"gen_time_seconds\": %lld}",
		       (long long)s->anchor_gen_time);
	} else
		printf("null");
	printf(", \"unanchored_rows\": %lld, \"nodes\": [",
	       s->audit_unanchored);
	for (size_t i = 0; i < s->nnodes; i++) {
		printf("%s{\"node\": ", i ? ", " : "");
		json_str(s->nodes[i].node);
		printf(", \"chain_length\": %lld, \"last_id\": %lld, "
		       "\"unanchored_rows\": %lld}",
		       s->nodes[i].rows, s->nodes[i].last_id,
		       s->nodes[i].unanchored);
	}
	printf("]}\n}\n");
}

/* ---- the command ------------------------------------------------------- */

/* Read the figures (as the milter's user) and write what was asked:
 * text or JSON on stdout, the exposition on prom (may be NULL). */
static int stats_gather(struct config *cfg, int json, int text, FILE *prom)
{
	struct stats_ctx x;
	struct db_stats s;
	struct db *db;
	char err[1024];

	memset(&x, 0, sizeof(x));
	x.now = time(NULL);
	x.pidfile = cfg->pidfile;
	db = open_db_as_user(cfg, DB_READONLY);
	if (db_stats_read(db, x.now - DAY, &s, err, sizeof(err)) != 0)
		die(EX_SOFTWARE, "stats: %s", err);
	db_close(db);
	milter_check(&x);
	if (prom && metrics_write(prom, &s, x.now, &x.up) != 0)
		die(EX_IOERR, "stats: writing the metrics: %s",
		    strerror(errno));
	if (json)
		out_json(&s, &x);
	else if (text)
		out_text(&s, &x);
	db_stats_free(&s);
	return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}

/* The metrics into path, atomically: the child gathers and writes the
 * temp file, the parent renames it once the child succeeded. */
static int stats_prometheus(struct config *cfg, const char *path, int json)
{
	char tmp[4200], err[4400];
	int fd, status = 0;
	pid_t pid;

	if ((fd = metrics_file_open(path, tmp, sizeof(tmp), err, sizeof(err))) <
	    0)
		die(EX_CANTCREAT, "stats: %s", err);
	fflush(stdout);
	if ((pid = fork()) < 0) {
		metrics_file_commit(fd, tmp, path, 0, err, sizeof(err));
		die(EX_OSERR, "stats: fork: %s", strerror(errno));
	}
	if (pid == 0) {
		FILE *f = fdopen(fd, "w");
		int rc;

		if (f == NULL)
			die(EX_OSERR, "stats: %s: %s", tmp, strerror(errno));
		rc = stats_gather(cfg, json, 0, f);
		if (fclose(f) != 0)
			die(EX_IOERR, "stats: %s: %s", tmp, strerror(errno));
		exit(rc);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		metrics_file_commit(fd, tmp, path, 0, err, sizeof(err));
		fprintf(stderr, "smimectl: stats: %s left as it was\n", path);
		return WIFEXITED(status) ? WEXITSTATUS(status) : EX_SOFTWARE;
	}
	if (metrics_file_commit(fd, tmp, path, 1, err, sizeof(err)) != 0)
		die(EX_CANTCREAT, "stats: %s", err);
	return EX_OK;
}

int cmd_stats(int argc, char **argv)
{
	const char *prom = NULL;
	struct config *cfg;
	int json = 0, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--prometheus") == 0 && i + 1 < argc &&
		         argv[i + 1][0] != '\0')
			prom = argv[++i];
		else
			die(EX_USAGE,
			    "usage: stats [--prometheus FILE] [--json]");
	}
	cfg = load_config();
	rc = prom ? stats_prometheus(cfg, prom, json)
	          : stats_gather(cfg, json, 1, NULL);
	config_free(cfg);
	return rc;
}
