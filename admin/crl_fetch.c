/*
 * crl_fetch -- smimectl crl fetch: the CRL of every distribution point of
 * the certificates in use (signing, recipient, and the CAs of ca_file) and
 * of crl_urls, downloaded with a conditional GET, verified against ca_file
 * and imported like crl import does; the milter reloads when a
 * certificate became revoked.  Exit codes follow the monitoring
 * convention (crl_verdict): 0 all fresh, 1 a fetch failed but its stored
 * CRL is still valid, 2 a CRL is past nextUpdate or none was ever stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <openssl/pem.h>

#include "certstore.h"
#include "crl.h"
#include "db.h"
#include "http.h"
#include "smimectl.h"

/* What one run did, for the summary. */
struct fetch_run {
	const struct config *cfg;
	struct db *db;
	int quiet, verbose;
	time_t now;
	int fetched, unchanged, failed, refused, skipped;
	int changed; /* certificates newly revoked */
	int worst;   /* the exit code: the highest verdict */
};

/* ---- the URLs -------------------------------------------------------- */

/* The distribution points of the certificates in the PEM text pem added
 * to l; -1 when out of memory. */
static int add_pem(struct crl_urls *l, const char *pem)
{
	STACK_OF(X509) *sk = pem ? cert_stack_from_pem(pem) : NULL;
	int rc = 0;

	for (int i = 0; rc == 0 && i < sk_X509_num(sk); i++)
		if (crl_urls_add_cdp(l, sk_X509_value(sk, i)) < 0)
			rc = -1;
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

static int add_signing(void *arg, const char *address, const struct db_cert *c)
{
	if (strcmp(c->status, "active") != 0)
		return 0;
	if (add_pem(arg, c->cert_pem) != 0)
		die(EX_OSERR, "out of memory");
	return 0;
}

static int add_recipient(void *arg, const struct db_recipient *r)
{
	if (add_pem(arg, r->cert_pem) != 0)
		die(EX_OSERR, "out of memory");
	return 0;
}

/* Every URL to fetch, distinct: crl_urls first, then the distribution
 * points of the CAs in ca_file, of the active signing certificates and of
 * the active recipient certificates. */
static void collect(const struct fetch_run *run, struct crl_urls *l)
{
	const struct config *cfg = run->cfg;
	STACK_OF(X509) *cas;
	char err[1024];

	for (size_t i = 0; i < cfg->ncrl_urls; i++)
		if (crl_urls_add(l, cfg->crl_urls[i]) < 0)
			die(EX_OSERR, "out of memory");
	if (cert_read_file(cfg->ca_file, &cas, err, sizeof(err)) != 0)
		die(EX_CONFIG, "ca_file: %s", err);
	for (int i = 0; i < sk_X509_num(cas); i++)
		if (crl_urls_add_cdp(l, sk_X509_value(cas, i)) < 0)
			die(EX_OSERR, "out of memory");
	sk_X509_pop_free(cas, X509_free);
	if (db_certs(run->db, add_signing, l, err, sizeof(err)) != 0 ||
	    db_recipients(run->db, NULL, 1, add_recipient, l, err,
	                  sizeof(err)) != 0)
		die(EX_TEMPFAIL, "%s", err);
}

/* ---- one URL ----------------------------------------------------------- */

static const char *day(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t <= 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		snprintf(buf, len, "unknown");
	return buf;
}

/* One line about url when it says something (verdict > 0) or the run is
 * not quiet. */
static void say(const struct fetch_run *run, int verdict, const char *url,
                const char *what)
{
	if (!run->quiet || verdict > 0)
		printf("%s: %s\n", url, what);
}

/* A fetch that gave no usable CRL: recorded (the stored CRL's fields
 * kept, so its Last-Modified is asked again next time), said with what
 * the stored CRL is still worth, and its verdict returned. */
static int fetch_failed(struct fetch_run *run, struct db_crl_source *old,
                        const char *url, const char *why)
{
	int stored = old->issuer != NULL;
	int v = crl_verdict(0, stored, old->next_update, run->now);
	char err[1024], msg[2048], d[64];
	struct db_crl_source row = *old;

	row.checked_at = run->now;
	row.status = "failed";
	row.detail = (char *)why;
	if (db_crl_source_put(run->db, &row, err, sizeof(err)) != 0)
		fprintf(stderr, "smimectl: %s: %s\n", url, err);
	snprintf(msg, sizeof(msg), "%s; %s%s", why,
	         !stored  ? "no CRL was ever stored from it"
	         : v == 1 ? "the stored CRL is valid until "
	                  : "the stored CRL expired at ",
	         stored ? day(old->next_update, d, sizeof(d)) : "");
	say(run, v, url, msg);
	return v;
}

/* 304, or a 200 without a body that libcurl judged not newer. */
static int not_modified(const struct http_resp *r, time_t since)
{
	return since > 0 && (r->code == 304 || (r->code == 200 && r->len == 0 &&
	                                        r->last_modified > 0 &&
	                                        r->last_modified <= since));
}

static int fetch_unchanged(struct fetch_run *run, struct db_crl_source *old,
                           const char *url)
{
	int v = crl_verdict(1, 1, old->next_update, run->now);
	char err[1024], msg[256], d[64];

	struct db_crl_source row = *old;

	run->unchanged++;
	row.checked_at = run->now;
	row.status = "not-modified";
	row.detail = NULL;
	if (db_crl_source_put(run->db, &row, err, sizeof(err)) != 0)
		fprintf(stderr, "smimectl: %s: %s\n", url, err);
	snprintf(msg, sizeof(msg), "not modified; %s %s",
	         v ? "the stored CRL expired at" : "valid until",
	         day(old->next_update, d, sizeof(d)));
	say(run, v, url, msg);
	return v;
}

/* The CRL in r (HTTP 200) verified and imported. */
static int fetch_import(struct fetch_run *run, struct db_crl_source *old,
                        const char *url, const struct http_resp *r)
{
	char err[1024], why[1100], msg[2048], d[64];
	struct db_crl_source src = { 0 };
	struct crl_applied a;
	X509_CRL *crl = crl_parse(r->data, r->len, err, sizeof(err));
	int rc, v;

	if (crl == NULL) {
		run->refused++;
		snprintf(why, sizeof(why), "refused: %s", err);
		return fetch_failed(run, old, url, why);
	}
	src.url = (char *)url;
	src.last_modified = r->last_modified > 0 ? r->last_modified : 0;
	src.fetched_at = src.checked_at = run->now;
	src.status = "fresh";
	rc = crl_import_one(run->cfg, run->db, crl, url, &src, &a, err,
	                    sizeof(err));
	X509_CRL_free(crl);
	if (rc != 0) {
		rc > 0 ? run->refused++ : run->failed++;
		snprintf(why, sizeof(why), "%s: %s",
		         rc > 0 ? "refused" : "failed", err);
		return fetch_failed(run, old, url, why);
	}
	run->fetched++;
	run->changed += a.changed;
	v = crl_verdict(1, 1, a.next_update, run->now);
	snprintf(msg, sizeof(msg),
	         "fetched %d entr%s, %d certificate%s newly revoked; %s %s",
	         a.entries, a.entries == 1 ? "y" : "ies", a.changed,
	         a.changed == 1 ? "" : "s",
	         v ? "but it expired at" : "valid until",
	         day(a.next_update, d, sizeof(d)));
	say(run, v, url, msg);
	crl_applied_clear(&a);
	return v;
}

/* Fetch url and store what it gives; returns its verdict. */
static int fetch_one(struct fetch_run *run, const char *url)
{
	struct db_crl_source old;
	struct http_req rq = { 0 };
	struct http_resp r;
	char err[1024], why[1100];
	int v;

	if (db_crl_source_get(run->db, url, &old, err, sizeof(err)) < 0)
		die(EX_TEMPFAIL, "%s", err);
	if (old.url == NULL)
		old.url = xstrdup(url);
	rq.url = url;
	rq.what = "CRL";
	rq.timeout_ms = run->cfg->crl_timeout * 1000;
	rq.max_response = (size_t)run->cfg->crl_max_size;
	rq.accept = "application/pkix-crl, application/x-pkcs7-crl, */*";
	/* only when a CRL from url is stored: else there is nothing to
	 * keep if the server says "not modified" */
	rq.if_modified_since = old.issuer ? old.last_modified : 0;
	if (run->verbose)
		printf("%s: GET%s\n", url,
		       rq.if_modified_since ? " (If-Modified-Since)" : "");
	if (http_fetch(&rq, &r, err, sizeof(err)) != 0) {
		run->failed++;
		snprintf(why, sizeof(why), "failed: %s", err);
		v = fetch_failed(run, &old, url, why);
	} else if (not_modified(&r, rq.if_modified_since))
		v = fetch_unchanged(run, &old, url);
	else if (r.code != 200) {
		run->failed++;
		snprintf(why, sizeof(why), "failed: HTTP status %ld", r.code);
		v = fetch_failed(run, &old, url, why);
	} else
		v = fetch_import(run, &old, url, &r);
	http_resp_free(&r);
	db_crl_source_clear(&old);
	return v;
}

/* ---- the command --------------------------------------------------------- */

/* After the run: the milter told to reload when a status changed. */
static void reload_if_changed(const struct fetch_run *run)
{
	char err[1024];
	int notified;
	long pid;

	if (run->changed == 0)
		return;
	pid = service_reload(run->cfg, run->db, &notified, err, sizeof(err));
	if (notified)
		printf("asked the milter of every node to reload\n");
	if (pid > 0)
		printf("asked smime-milter (pid %ld) to reload\n", pid);
	else if (pid == 0 && !notified)
		printf("%s sets no pidfile: send SIGUSR1 to the milter so it "
		       "stops using the revoked certificates\n",
		       run->cfg->path);
	else if (pid < 0)
		printf("the milter was not reloaded: %s\n", err);
}

/* --quiet (-q) and -v (--verbose) into run, or die with the usage. */
static void fetch_options(int argc, char **argv, struct fetch_run *run)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0)
			run->quiet = 1;
		else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)
			run->verbose = 1;
		else
			die(EX_USAGE, "usage: crl fetch [--quiet] [-v]");
	}
}

int cmd_crl_fetch(int argc, char **argv)
{
	struct fetch_run run = { 0 };
	struct crl_urls urls = { 0 };
	struct config *cfg;

	fetch_options(argc, argv, &run);
	cfg = load_config();
	/* a CRL is verified before anything of it is stored */
	if (cfg->ca_file == NULL)
		die(EX_CONFIG, "crl fetch needs ca_file, which %s does not set",
		    cfg->path);
	run.cfg = cfg;
	run.db = open_db_as_user(cfg, DB_READWRITE);
	job_begin(run.db, "crl fetch"); /* one node of many does it */
	run.now = time(NULL);
	collect(&run, &urls);
	for (size_t i = 0; i < urls.n; i++) {
		int v;
		if (!crl_url_fetchable(urls.url[i])) {
			run.skipped++;
			if (!run.quiet)
				printf("%s: skipped: not http or https\n",
				       urls.url[i]);
			continue;
		}
		v = fetch_one(&run, urls.url[i]);
		if (v > run.worst)
			run.worst = v;
	}
	if (!run.quiet || run.worst > 0)
		printf("%zu CRL URL%s: %d fetched, %d not modified, %d failed, "
		       "%d refused, %d skipped; %d certificate%s newly "
		       "revoked\n",
		       urls.n, urls.n == 1 ? "" : "s", run.fetched,
		       run.unchanged, run.failed, run.refused, run.skipped,
		       run.changed, run.changed == 1 ? "" : "s");
	reload_if_changed(&run);
	crl_urls_free(&urls);
	db_close(run.db);
	config_free(cfg);
	return run.worst;
}
