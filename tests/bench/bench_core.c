/*
 * bench_core -- figure (a): messages/s through the signing core in-process,
 * one thread, the same lib/ code the milter runs (headers, eoh, body, eom).
 *
 *   bench_core CONF MESSAGE_FILE SECONDS [RCPT]
 *   bench_core -i CONF MESSAGE_FILE SECONDS RCPT
 *
 * With RCPT each message gets that envelope recipient, and must come out
 * encrypted (the configuration's encrypt rules and recipient certificates
 * decide): the sign+encrypt figure of issue 5.
 * With -i the message is inbound mail from outside to RCPT, through
 * lib/inbound.c (headers, eoh, body, eom) as the milter runs it, and each
 * one must come out decrypted, with a new body and smime=pass (issue 13).
 *
 *   bench_core -p CONF MESSAGE SECONDS [RCPT]
 *
 * With -p: signing with header protection (RFC 9788) against signing
 * without it, in one run on one snapshot: ten rounds of each, alternating
 * (the configuration's header_protection switched between rounds), so
 * that load from elsewhere falls on both alike.  Prints both rates and
 * their ratio (issue 14).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>

#include "inbound.h"
#include "message.h"
#include "slurp.h"
#include "snapshot.h"
#include "util.h"

static int sink(void *arg, const unsigned char *buf, size_t len)
{
	*(size_t *)arg += len;
	return 0;
}

/* CPU time (user + system) of this process, seconds. */
static double cpu_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* One inbound message through lib/inbound.c; 0 when it was decrypted and
 * its signature verified. */
static int one_inbound(struct snapshot *s, const char *rcpt, char **names,
                       char **values, int nh, unsigned char *body,
                       size_t bodylen, size_t *out)
{
	struct inb *m = inb_new(s);
	const struct msg_edit *edits;
	const struct inb_result *r;
	const char *reason = NULL;
	size_t nedits;
	char err[512];
	int rc = -1;

	if (m == NULL || inb_rcpt(m, rcpt) != 0)
		goto out;
	for (int i = 0; i < nh; i++)
		inb_header(m, names[i], values[i]);
	if (inb_eoh(m, 0, &reason) != INB_PROCESS) {
		fprintf(stderr, "not processed: %s\n", reason ? reason : "?");
		goto out;
	}
	if (inb_body(m, body, bodylen, err, sizeof(err)) != 0 ||
	    inb_eom(m, sink, out, &edits, &nedits, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	if (!r->decrypted || !r->body_replaced || strcmp(r->smime, "pass")) {
		fprintf(stderr, "not decrypted and verified: smime=%s (%s)\n",
		        r->smime, r->reason);
		goto out;
	}
	rc = 0;
out:
	inb_free(m);
	return rc;
}

/* One outbound message through lib/message.c; 0 when it was signed (and
 * encrypted, with rcpt). */
static int one_outbound(struct snapshot *s, const char *rcpt, char **names,
                        char **values, int nh, unsigned char *body,
                        size_t bodylen, size_t *out)
{
	struct msg *m = msg_new(s);
	const struct msg_edit *edits;
	size_t nedits;
	const char *reason;
	char err[512];
	int rc = -1;

	if (m == NULL)
		return -1;
	if (rcpt && msg_rcpt(m, rcpt, 1, &reason) != 0) {
		fprintf(stderr, "recipient refused: %s\n", reason);
		goto out;
	}
	for (int i = 0; i < nh; i++)
		msg_header(m, names[i], values[i], err, sizeof(err));
	if (msg_eoh(m, 1, &reason) != MSG_SIGN) {
		fprintf(stderr, "not signed: %s\n", reason);
		goto out;
	}
	if (rcpt && msg_encrypt_count(m) == 0) {
		fprintf(stderr, "not encrypted: %s\n",
		        msg_encrypt_note(m) ? msg_encrypt_note(m) : "?");
		goto out;
	}
	if (msg_body(m, body, bodylen, err, sizeof(err)) != 0 ||
	    msg_eom(m, sink, out, &edits, &nedits, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	rc = 0;
out:
	msg_free(m);
	return rc;
}

/* -p: rounds of signing with and without header protection. */
static int hp_ratio(struct snapshot *s, const char *rcpt, char **names,
                    char **values, int nh, unsigned char *body, size_t bodylen,
                    double secs)
{
	double t[2] = { 0, 0 }, c[2] = { 0, 0 };
	long n[2] = { 0, 0 };
	size_t out = 0;
	int saved = s->cfg->header_protection;

	for (int round = -2; round < 20; round++) {
		int hp = round & 1;
		double t0 = now(), c0 = cpu_now();
		long k = 0;
		s->cfg->header_protection = hp;
		do {
			if (one_outbound(s, rcpt, names, values, nh, body,
			                 bodylen, &out) != 0)
				return 1;
			k++;
		} while (now() - t0 < secs / 20);
		if (round < 0)
			continue; /* warm-up, one of each */
		t[hp] += now() - t0;
		c[hp] += cpu_now() - c0;
		n[hp] += k;
	}
	s->cfg->header_protection = saved;
	/* ratio: of the rates (wall clock); cpu_ratio: of CPU time per
	 * message, which load from other processes disturbs less */
	printf("hp_rate=%.1f plain_rate=%.1f ratio=%.3f hp_cpu_ms=%.3f "
	       "plain_cpu_ms=%.3f cpu_ratio=%.3f messages=%ld+%ld\n",
	       n[1] / t[1], n[0] / t[0], (n[1] / t[1]) / (n[0] / t[0]),
	       c[1] * 1e3 / (double)n[1], c[0] * 1e3 / (double)n[0],
	       (c[0] / (double)n[0]) / (c[1] / (double)n[1]), n[1], n[0]);
	return 0;
}

int main(int argc, char **argv)
{
	struct snapshot *s;
	char err[4096], warn[4096];
	char *text, *body;
	size_t len, bodylen, out = 0;
	double t0, c0, secs;
	long n = 0;
	char *names[64], *values[64];
	int nh = 0;
	int inbound = argc > 1 && strcmp(argv[1], "-i") == 0;
	int ratio = argc > 1 && strcmp(argv[1], "-p") == 0;

	argc -= inbound + ratio;
	argv += inbound + ratio;
	if ((argc != 4 || inbound) && argc != 5) {
		fprintf(stderr,
		        "usage: bench_core CONF MESSAGE SECONDS [RCPT]\n"
		        "       bench_core -i CONF MESSAGE SECONDS "
		        "RCPT\n"
		        "       bench_core -p CONF MESSAGE SECONDS "
		        "[RCPT]\n");
		return 2;
	}
	malloc_tune(); /* as the daemon does */
	if (snapshot_build(argv[1], 0, &s, err, sizeof(err), warn,
	                   sizeof(warn)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	text = bench_slurp(argv[2], &len);
	if (text == NULL)
		return 1;
	/* simple split: unfolded "Name: value" lines, blank line, body */
	body = strstr(text, "\r\n\r\n");
	if (body == NULL)
		return 1;
	*body = 0;
	body += 4;
	bodylen = len - (size_t)(body - text);
	for (char *line = strtok(text, "\r\n"); line && nh < 64;
	     line = strtok(NULL, "\r\n")) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = 0;
		names[nh] = line;
		values[nh] = colon + 1 + (colon[1] == ' ');
		nh++;
	}
	secs = atof(argv[3]);
	if (ratio) {
		int rc = hp_ratio(s, argc == 5 ? argv[4] : NULL, names, values,
		                  nh, (unsigned char *)body, bodylen, secs);
		snapshot_unref(s);
		free(text);
		return rc;
	}
	/* warm up (heap growth, caches) for a fifth of the time, then count */
	for (int pass = 0; pass < 2; pass++) {
		t0 = now();
		c0 = cpu_now();
		n = 0;
		do {
			if (inbound) {
				if (one_inbound(s, argv[4], names, values, nh,
				                (unsigned char *)body, bodylen,
				                &out) != 0)
					return 1;
				n++;
				continue;
			}
			if (one_outbound(s, argc == 5 ? argv[4] : NULL, names,
			                 values, nh, (unsigned char *)body,
			                 bodylen, &out) != 0)
				return 1;
			n++;
		} while (now() - t0 < (pass == 0 ? secs / 5 : secs));
	}
	secs = now() - t0;
	printf("messages=%ld seconds=%.3f rate=%.1f bytes_out=%zu "
	       "cpu_ms=%.3f\n",
	       n, secs, n / secs, out, (cpu_now() - c0) * 1e3 / (double)n);
	snapshot_unref(s);
	free(text);
	return 0;
}
