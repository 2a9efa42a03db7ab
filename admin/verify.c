/*
 * verify -- smimectl verify FILE... [--json]: the OP's check of disputed
 * messages (issue 14; Pasal 23 "otentikasi, keaslian data, dan
 * penyangkalan").  For each stored message: the signature, its signer and
 * chain, its status at signing time and today, the audit row of its
 * Message-ID with the hash chain up to it, and a verdict to paste.  The
 * decisions are lib/evidence.c's; this file reads the files and prints.
 * Exit 0 when every file is valid, 1 when one is invalid, else 2 when one
 * could not be checked (smimectl(8) VERIFY).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "certstore.h"
#include "evidence.h"
#include "smimectl.h"
#include "smime_verify.h"

/* One file named on the command line, opened before privileges drop. */
struct vfile {
	const char *path;
	int fd;
	char why[300]; /* set when it cannot be read */
};

/* Check one file into e. */
static void check_file(const struct evidence_opts *o, struct vfile *f,
                       struct evidence *e)
{
	struct stat st;
	void *p;
	char err[512];

	if (f->fd < 0) {
		evidence_unreadable(e, f->why);
		return;
	}
	if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		snprintf(f->why, sizeof(f->why), "%s: %s", f->path,
		         st.st_size == 0 ? "empty file" : "not a regular file");
		evidence_unreadable(e, f->why);
		return;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, f->fd, 0);
	if (p == MAP_FAILED) {
		snprintf(f->why, sizeof(f->why), "%s: %s", f->path,
		         strerror(errno));
		evidence_unreadable(e, f->why);
		return;
	}
	if (evidence_check(o, p, (size_t)st.st_size, e, err, sizeof(err)) != 0)
		die(EX_SOFTWARE, "%s: %s", f->path, err);
	munmap(p, (size_t)st.st_size);
}

static const char *tfmt(time_t t, char *buf, size_t len)
{
	return t ? time_fmt(t, buf, len) : NULL;
}

/* The message's own fields, in both outputs: the text label, the JSON
 * member, the value. */
struct field {
	const char *label, *name, *value;
};
#define NFIELDS 6

static void message_fields(const struct evidence *e, struct field *f)
{
	f[0] = (struct field){ "Message-ID:", "message_id", e->message_id };
	f[1] = (struct field){ "From:", "from", e->from };
	f[2] = (struct field){ "Subject:", "subject", e->subject };
	f[3] = (struct field){ "Date:", "date", e->date };
	f[4] = (struct field){ "shape:", "shape", e->shape };
	f[5] = (struct field){ "stamp:", "stamp", e->stamp };
}

/* ---- text ------------------------------------------------------------ */

static void text_line(const char *label, const char *value)
{
	if (value)
		printf("  %-13s %s\n", label, value);
}

static void print_text(const char *path, const struct evidence *e, time_t now)
{
	const struct smime_verdict *v = &e->then;
	const struct evidence_audit *a = &e->audit;
	char t1[40], t2[40], buf[800];

	printf("%s:\n", path);
	struct field f[NFIELDS];
	message_fields(e, f);
	for (size_t i = 0; i < NFIELDS; i++)
		text_line(f[i].label, f[i].value);
	if (v->result != SMIME_NONE) {
		snprintf(buf, sizeof(buf), "%s (%s)",
		         e->signature_ok ? "verified" : "FAILED", v->reason);
		text_line("signature:", buf);
	}
	text_line("signer:", v->subject);
	text_line("serial:", v->serial);
	text_line("issuer:", v->issuer);
	for (char **c = e->chain; c && *c; c++)
		text_line(c == e->chain ? "chain:" : "", *c);
	if (e->signature_ok) {
		snprintf(buf, sizeof(buf), "%s (%s)",
		         e->signing_time
		                 ? time_fmt(e->signing_time, t1, sizeof(t1))
		                 : "not given",
		         e->time_source ? e->time_source : "none");
		text_line("signed at:", buf);
	}
	if (e->ts_present) {
		if (e->ts_gen_time)
			snprintf(buf, sizeof(buf),
			         "RFC 3161 token, verified: %s, TSA %s",
			         time_fmt(e->ts_gen_time, t1, sizeof(t1)),
			         e->ts_tsa[0] ? e->ts_tsa : "(unnamed)");
		else
			snprintf(buf, sizeof(buf),
			         "RFC 3161 token, NOT verified (%s), TSA %s",
			         e->ts_problem,
			         e->ts_tsa[0] ? e->ts_tsa : "(unnamed)");
		text_line("time-stamp:", buf);
	}
	if (v->signer) {
		time_t na = asn1_time_to_time(X509_get0_notAfter(v->signer));
		snprintf(buf, sizeof(buf), "%s to %s%s",
		         time_fmt(asn1_time_to_time(
		                          X509_get0_notBefore(v->signer)),
		                  t1, sizeof(t1)),
		         time_fmt(na, t2, sizeof(t2)),
		         na < now ? " (expired)" : "");
		text_line("valid:", buf);
	}
	if (e->revoked) {
		snprintf(buf, sizeof(buf), "since %s (%s%s%s)",
		         e->revoked_at ? time_fmt(e->revoked_at, t1, sizeof(t1))
		                       : "an unknown date",
		         e->revoked_by, e->revoked_what ? ": " : "",
		         e->revoked_what ? e->revoked_what : "");
		text_line("revoked:", buf);
	} else if (e->signature_ok && e->today.result != SMIME_NONE)
		text_line("revoked:", "no");
	if (e->today.result != SMIME_NONE)
		text_line("today:", e->today.reason);
	if (e->hp) {
		snprintf(buf, sizeof(buf), "hp=\"%s\", %d field%s: %s", e->hp,
		         e->hp_fields, e->hp_fields == 1 ? "" : "s",
		         e->hp_changed ? e->hp_detail : "as signed");
		text_line("protected:", buf);
	} else if (e->signature_ok)
		text_line("protected:", "none (the header fields are not "
		                        "signed)");
	if (a->rows) {
		snprintf(buf, sizeof(buf), "row %lld (%s, queue id %s, %s)%s",
		         a->id, a->action ? a->action : "?",
		         a->queue_id ? a->queue_id : "?",
		         time_fmt(a->at, t1, sizeof(t1)),
		         a->rows > 1 ? " (more rows with this Message-ID)"
		                     : "");
		text_line("audit:", buf);
		if (a->chain == 1)
			text_line("audit chain:", "intact up to this row");
		else if (a->chain == 0) {
			struct db_audit_check c = { .problem = a->problem,
				                    .bad_id = a->broken_id,
				                    .prev_id = a->prev_id };
			char what[300];
			audit_problem_text(&c, what, sizeof(what));
			snprintf(buf, sizeof(buf), "BROKEN at row %lld: %s",
			         a->broken_id, what);
			text_line("audit chain:", buf);
		}
		if (a->anchor_id) {
			snprintf(buf, sizeof(buf),
			         "anchor %lld over row %lld, %s: %s%s",
			         a->anchor_id, a->anchor_row,
			         time_fmt(a->anchor_time, t1, sizeof(t1)),
			         a->anchor_ok ? "holds" : "BROKEN: ",
			         a->anchor_ok ? "" : a->anchor_why);
			text_line("trusted time:", buf);
		} else
			text_line("trusted time:",
			          "no anchor after this row yet (smimectl "
			          "audit anchor)");
	} else if (e->signature_ok || e->status != EVIDENCE_UNCHECKED)
		text_line("audit:", "no row for this Message-ID");
	text_line("verdict:", e->verdict);
}

/* ---- JSON ------------------------------------------------------------ */

static void jmember(const char *name, const char *value)
{
	printf(", \"%s\": ", name);
	json_str(value);
}

static void jbool(const char *name, int b)
{
	printf(", \"%s\": %s", name, b ? "true" : "false");
}

static void print_json(int n, const char *path, const struct evidence *e,
                       time_t now)
{
	const struct smime_verdict *v = &e->then;
	const struct evidence_audit *a = &e->audit;
	char t[40];

	printf("%s\n  {\"file\": ", n ? "," : "");
	json_str(path);
	jmember("status", evidence_status_name(e->status));
	printf(", \"exit\": %d", (int)e->status);
	jmember("verdict", e->verdict);
	jmember("reason_en", e->reason_en[0] ? e->reason_en : NULL);
	jmember("reason_id", e->reason_id[0] ? e->reason_id : NULL);
	struct field f[NFIELDS];
	message_fields(e, f);
	for (size_t i = 0; i < NFIELDS; i++)
		jmember(f[i].name, f[i].value);
	printf(", \"signature\": {\"verified\": %s",
	       e->signature_ok ? "true" : "false");
	jmember("result",
	        v->result != SMIME_NONE ? smime_result_name(v->result) : NULL);
	jmember("reason", v->result != SMIME_NONE ? v->reason : NULL);
	jmember("signing_time", tfmt(e->signing_time, t, sizeof(t)));
	jmember("time_source", e->time_source);
	if (e->ts_present) {
		printf(", \"timestamp\": {\"verified\": %s",
		       e->ts_gen_time ? "true" : "false");
		jmember("gen_time", e->ts_gen_time
		                            ? tfmt(e->ts_gen_time, t, sizeof(t))
		                            : NULL);
		jmember("problem", e->ts_problem[0] ? e->ts_problem : NULL);
		jmember("tsa", e->ts_tsa[0] ? e->ts_tsa : NULL);
		printf("}");
	} else
		printf(", \"timestamp\": null");
	jmember("today_result", e->today.result != SMIME_NONE
	                                ? smime_result_name(e->today.result)
	                                : NULL);
	jmember("today_reason",
	        e->today.result != SMIME_NONE ? e->today.reason : NULL);
	printf("}, \"signer\": ");
	if (v->signer) {
		time_t na = asn1_time_to_time(X509_get0_notAfter(v->signer));
		printf("{\"subject\": ");
		json_str(v->subject);
		jmember("serial", v->serial);
		jmember("issuer", v->issuer);
		jmember("identifier", v->identifier);
		jmember("not_before",
		        tfmt(asn1_time_to_time(X509_get0_notBefore(v->signer)),
		             t, sizeof(t)));
		jmember("not_after", tfmt(na, t, sizeof(t)));
		jbool("expired", na < now);
		printf("}");
	} else
		printf("null");
	printf(", \"chain\": [");
	for (char **c = e->chain; c && *c; c++) {
		printf("%s", c == e->chain ? "" : ", ");
		json_str(*c);
	}
	printf("], \"revocation\": {\"revoked\": %s",
	       e->revoked ? "true" : "false");
	jmember("revoked_at", tfmt(e->revoked_at, t, sizeof(t)));
	jmember("source", e->revoked_by);
	jmember("certificate", e->revoked_what);
	printf("}, \"audit\": {\"rows\": %d", a->rows);
	if (a->rows) {
		printf(", \"id\": %lld", a->id);
		jmember("at", tfmt(a->at, t, sizeof(t)));
		jmember("queue_id", a->queue_id);
		jmember("action", a->action);
		jmember("cert_serial", a->cert_serial);
		jmember("result", a->result);
		jmember("hash", a->hash);
	} else
		printf(", \"id\": null, \"at\": null, \"queue_id\": null, "
		       "\"action\": null, \"cert_serial\": null, \"result\": "
		       "null, \"hash\": null");
	printf(", \"chain_ok\": %s", a->chain < 0 ? "null"
	                             : a->chain   ? "true"
	                                          : "false");
	if (a->chain == 0) {
		printf(", \"broken_id\": %lld", a->broken_id);
		jmember("problem", audit_problem_key(a->problem));
	} else
		printf(", \"broken_id\": null, \"problem\": null");
	if (a->anchor_id) {
		printf(", \"anchor\": {\"id\": %lld, \"audit_id\": %lld",
		       a->anchor_id, a->anchor_row);
		jmember("gen_time", tfmt(a->anchor_time, t, sizeof(t)));
		printf(", \"ok\": %s", a->anchor_ok ? "true" : "false");
		jmember("problem", a->anchor_ok ? NULL : a->anchor_why);
		printf("}");
	} else
		printf(", \"anchor\": null");
	printf("}, \"protected_headers\": ");
	if (e->hp) {
		printf("{\"hp\": \"%s\", \"fields\": %d", e->hp, e->hp_fields);
		jmember("changed", e->hp_changed);
		jmember("detail", e->hp_changed ? e->hp_detail : NULL);
		printf("}}");
	} else
		printf("null}");
}

/* ---- the command ----------------------------------------------------- */

int cmd_verify(int argc, char **argv)
{
	struct evidence_opts o = { 0 };
	struct db_audit_check chain;
	struct db_audit_anchor *anchors = NULL;
	size_t nanchors = 0;
	struct config *cfg;
	struct vfile *files;
	struct db *db = NULL;
	char err[1024], dberr[1024];
	int json = 0, nfiles = 0, worst = EVIDENCE_VALID, invalid = 0;

	files = calloc((size_t)argc, sizeof(*files));
	if (files == NULL)
		die(EX_OSERR, "out of memory");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
			continue;
		}
		if (argv[i][0] == '-' && argv[i][1] != '\0')
			die(EX_USAGE, "usage: verify FILE... [--json]");
		struct vfile *f = &files[nfiles++];
		f->path = argv[i];
		/* read as the caller, before become_user */
		f->fd = open(argv[i], O_RDONLY | O_CLOEXEC);
		if (f->fd < 0)
			snprintf(f->why, sizeof(f->why), "%s: %s", argv[i],
			         strerror(errno));
	}
	if (nfiles == 0)
		die(EX_USAGE, "usage: verify FILE... [--json]");
	cfg = load_config();
	become_user(cfg);
	o.now = time(NULL);
	o.ca_file = cfg->ca_file;
	o.authserv_id = cfg->authserv_id;
	o.timestamp_ca_file = cfg->timestamp_ca_file;
	o.store = cfg->ca_file
	                  ? smime_trust_load(cfg->ca_file, err, sizeof(err))
	                  : NULL;
	if (db_open(cfg->database, DB_READONLY, &db, dberr, sizeof(dberr)) !=
	    0) {
		db = NULL;
		o.db_error = dberr;
	}
	o.db = db;
	if (db) { /* this node's chain and its anchors once for all the
	             files (lib/evidence reads another node's itself) */
		o.chain_rc = db_audit_verify_node_anchors(db, db_node(db), 0,
		                                          NULL, &chain,
		                                          &anchors, &nanchors,
		                                          err, sizeof(err));
		o.chain = o.chain_rc < 0 ? NULL : &chain;
		o.anchors = anchors;
		o.nanchors = nanchors;
	}
	if (json)
		printf("[");
	for (int i = 0; i < nfiles; i++) {
		struct evidence e;
		check_file(&o, &files[i], &e);
		if (json)
			print_json(i, files[i].path, &e, o.now);
		else
			print_text(files[i].path, &e, o.now);
		if (e.status == EVIDENCE_INVALID)
			invalid = 1;
		else if (e.status == EVIDENCE_UNCHECKED)
			worst = EVIDENCE_UNCHECKED;
		evidence_clear(&e);
		if (files[i].fd >= 0)
			close(files[i].fd);
	}
	if (json)
		printf("\n]\n");
	X509_STORE_free(o.store);
	db_audit_anchors_free(anchors, nanchors);
	db_close(db);
	config_free(cfg);
	free(files);
	return invalid ? 1 : worst;
}
