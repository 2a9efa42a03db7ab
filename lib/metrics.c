/* metrics -- the Prometheus text exposition of smimectl stats and its
 * atomic file (see metrics.h). */
#include "metrics.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void metrics_label_value(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	const unsigned char *end = p + strlen((const char *)p);

	while (*p) {
		size_t n = utf8_len(p, (size_t)(end - p));

		if (n == 0) {
			fputs("\xef\xbf\xbd", f); /* U+FFFD */
			p++;
		} else if (*p == '\\' || *p == '"') {
			fputc('\\', f);
			fputc(*p++, f);
		} else if (*p == '\n') {
			fputs("\\n", f);
			p++;
		} else {
			fwrite(p, 1, n, f);
			p += n;
		}
	}
}

void metrics_family(FILE *f, const char *name, const char *type,
                    const char *help)
{
	fprintf(f, "# HELP %s ", name);
	for (const char *p = help; *p; p++)
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

void metrics_sample(FILE *f, const char *name, const char *const *labels,
                    long long value)
{
	fputs(name, f);
	for (size_t i = 0; labels && labels[i]; i += 2) {
		fprintf(f, "%s%s=\"", i ? "," : "{", labels[i]);
		metrics_label_value(f, labels[i + 1]);
		fputc('"', f);
	}
	fprintf(f, "%s %lld\n", labels && labels[0] ? "}" : "", value);
}

long metrics_days(time_t t, time_t now)
{
	long long d = (long long)t - (long long)now;

	return (long)(d >= 0 ? d / 86400 : -((-d + 86399) / 86400));
}

/* The families of the audit counts: by action, then unsigned by reason. */
static void write_counts(FILE *f, const struct db_stats *s)
{
	static const struct {
		const char *name, *type, *label, *help;
		int reasons, recent;
	} fam[] = {
		{ "smime_milter_messages_total", "counter", "action",
		  "Messages in the audit log, by action.", 0, 0 },
		{ "smime_milter_messages_24h", "gauge", "action",
		  "Messages in the audit log in the last 24 hours, by action.",
		  0, 1 },
		{ "smime_milter_unsigned_messages_total", "counter", "reason",
		  "Mail passed unsigned, by reason.", 1, 0 },
		{ "smime_milter_unsigned_messages_24h", "gauge", "reason",
		  "Mail passed unsigned in the last 24 hours, by reason.", 1,
		  1 },
	};

	for (size_t i = 0; i < sizeof(fam) / sizeof(fam[0]); i++) {
		const struct db_stats_count *c =
		        fam[i].reasons ? s->reasons : s->actions;
		size_t n = fam[i].reasons ? s->nreasons : s->nactions;

		if (n == 0)
			continue;
		metrics_family(f, fam[i].name, fam[i].type, fam[i].help);
		for (size_t k = 0; k < n; k++) {
			const char *l[] = { fam[i].label, c[k].key, NULL };
			metrics_sample(f, fam[i].name, l,
			               fam[i].recent ? c[k].recent
			                             : c[k].total);
		}
	}
}

static void write_certs(FILE *f, const struct db_stats *s, time_t now)
{
	const char *name = "smime_milter_certificate_expiry_seconds";
	long long min = 0;

	metrics_family(f, "smime_milter_certificates", "gauge",
	               "Active certificates mapped to a mailbox.");
	metrics_sample(f, "smime_milter_certificates", NULL,
	               (long long)s->ncerts);
	if (s->ncerts == 0)
		return;
	metrics_family(f, name, "gauge",
	               "Seconds until the certificate's notAfter (negative: "
	               "expired).");
	for (size_t i = 0; i < s->ncerts; i++) {
		const struct db_stats_cert *c = &s->certs[i];
		const char *l[] = { "mailbox", c->mailbox, "kind", c->kind,
			            "serial",  c->serial,  NULL };
		long long left = (long long)c->not_after - (long long)now;

		if (i == 0 || left < min)
			min = left;
		metrics_sample(f, name, l, left);
	}
	metrics_family(f, "smime_milter_certificate_expiry_min_seconds",
	               "gauge",
	               "Seconds until the first notAfter of the active "
	               "certificates.");
	metrics_sample(f, "smime_milter_certificate_expiry_min_seconds", NULL,
	               min);
}

/* One family over the CRLs: their age, or (next) the time to nextUpdate
 * of those that have one. */
static void write_crl_family(FILE *f, const struct db_stats *s, time_t now,
                             int next)
{
	const char *name = next ? "smime_milter_crl_next_update_seconds"
	                        : "smime_milter_crl_age_seconds";
	size_t n = 0;

	for (size_t i = 0; i < s->ncrls; i++)
		n += !next || s->crls[i].next_update != 0;
	if (n == 0)
		return;
	metrics_family(f, name, "gauge",
	               next ? "Seconds until the nextUpdate of that CRL "
	                      "(negative: stale)."
	                    : "Seconds since the thisUpdate of the newest CRL "
	                      "of the issuer.");
	for (size_t i = 0; i < s->ncrls; i++) {
		const struct db_stats_crl *c = &s->crls[i];
		const char *l[] = { "issuer", c->issuer, NULL };

		if (next && c->next_update == 0)
			continue;
		metrics_sample(f, name, l,
		               next ? (long long)c->next_update - (long long)now
		                    : (long long)now -
		                               (long long)c->this_update);
	}
}

/* A family of one sample without labels. */
static void write_one(FILE *f, const char *name, const char *help,
                      long long value)
{
	metrics_family(f, name, "gauge", help);
	metrics_sample(f, name, NULL, value);
}

/* The length of each node's chain (schema 9): a sample per node, label
 * node ("" for rows of no named node; an empty log: that one at 0). */
static void write_chains(FILE *f, const struct db_stats *s)
{
	const char *l[3] = { "node", "", NULL };

	metrics_family(f, "smime_milter_audit_chain_length", "gauge",
	               "Rows in the hash chain of the audit log, per node.");
	if (s->nnodes == 0)
		metrics_sample(f, "smime_milter_audit_chain_length", l, 0);
	for (size_t i = 0; i < s->nnodes; i++) {
		l[1] = s->nodes[i].node;
		metrics_sample(f, "smime_milter_audit_chain_length", l,
		               s->nodes[i].rows);
	}
}

int metrics_write(FILE *f, const struct db_stats *s, time_t now,
                  const struct metrics_up *up)
{
	write_counts(f, s);
	write_certs(f, s, now);
	write_crl_family(f, s, now, 0);
	write_crl_family(f, s, now, 1);
	write_chains(f, s);
	write_one(f, "smime_milter_audit_unanchored_rows",
	          "Rows of the audit log after the newest RFC 3161 anchor of "
	          "their chain.",
	          s->audit_unanchored);
	if (s->anchor_id > 0)
		write_one(f, "smime_milter_audit_last_anchor_timestamp_seconds",
		          "genTime of the newest RFC 3161 anchor of the audit "
		          "log.",
		          (long long)s->anchor_gen_time);
	write_one(f, "smime_milter_up",
	          "1 when the milter's pidfile names a running process.",
	          up && up->up);
	write_one(f, "smime_milter_stats_generated_timestamp_seconds",
	          "When smimectl stats wrote these metrics.", (long long)now);
	return fflush(f) != 0 || ferror(f) ? -1 : 0;
}

/* ---- the file, replaced atomically ------------------------------------- */

/* The directory of path into dir ("." when it has none). */
static void dir_of(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(dir, len, ".");
	else if (slash == path)
		snprintf(dir, len, "/");
	else
		snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

int metrics_file_open(const char *path, char *tmp, size_t tmplen, char *err,
                      size_t errlen)
{
	const char *slash = strrchr(path, '/'),
	           *base = slash ? slash + 1 : path;
	char dir[4096];
	int fd;

	if (*base == '\0')
		return seterr(err, errlen, "%s: not a file name", path);
	dir_of(path, dir, sizeof(dir));
	if ((size_t)snprintf(tmp, tmplen, "%s/.%s.XXXXXX", dir, base) >= tmplen)
		return seterr(err, errlen, "%s: name too long", path);
	if ((fd = mkstemp(tmp)) < 0)
		return seterr(err, errlen, "cannot create a file in %s: %s",
		              dir, strerror(errno));
	if (fchmod(fd, 0644) != 0) {
		seterr(err, errlen, "%s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	return fd;
}

int metrics_file_commit(int fd, const char *tmp, const char *path, int ok,
                        char *err, size_t errlen)
{
	char dir[4096];
	int dfd, rc = 0;

	if (!ok)
		rc = -1; /* the caller has said why */
	else if (fsync(fd) != 0)
		rc = seterr(err, errlen, "%s: %s", tmp, strerror(errno));
	if (close(fd) != 0 && rc == 0)
		rc = seterr(err, errlen, "%s: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, path) != 0)
		rc = seterr(err, errlen, "cannot replace %s: %s", path,
		            strerror(errno));
	if (rc != 0) {
		unlink(tmp);
		return -1;
	}
	dir_of(path, dir, sizeof(dir));
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY)) >= 0) {
		fsync(dfd); /* the rename itself reaches the disk */
		close(dfd);
	}
	return 0;
}
