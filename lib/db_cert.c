/* db_cert -- signing certificates, mailbox mappings, their history,
 * revocation and CRLs (see db.h). */
#include "certstore.h"
#include "db_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* struct db_cert and the columns of certificates: one table, in SELECT
 * order. */
/* clang-format off */
#define C(t, f) DB_COL(t, struct db_cert, f)
static const struct db_col cert_cols[] = {
	C(DB_COL_INT, id),
	C(DB_COL_TEXT, kind),
	C(DB_COL_TEXT, mailbox),
	DB_CERT_IDENTITY_COLS(struct db_cert),
	C(DB_COL_TEXT, status),
	C(DB_COL_TEXT, key_backend),
	C(DB_COL_TEXT, key_location),
	C(DB_COL_TEXT, secret_file),
	C(DB_COL_TEXT, cert_pem),
	C(DB_COL_TEXT, chain_pem),
	C(DB_COL_TIME, created_at),
	C(DB_COL_TIME, revoked_at),
	C(DB_COL_TEXT, revocation_reason),
	C(DB_COL_TEXT, owner),
	C(DB_COL_TEXT, nip),
	C(DB_COL_TEXT, unit),
	C(DB_COL_TEXT, contact),
};
#undef C
/* clang-format on */
#define NCERT_COLS (sizeof(cert_cols) / sizeof(cert_cols[0]))

/* "SELECT c.id, ... c.contact" followed by rest, into sql. */
static const char *cert_select(char *sql, size_t len, const char *rest)
{
	char cols[512];

	snprintf(sql, len, "SELECT %s%s",
	         db_cols_list(cert_cols, NCERT_COLS, "c.", cols, sizeof(cols)),
	         rest);
	return sql;
}

void db_cert_from_info(struct db_cert *dc, const struct cert_info *ci)
{
	memset(dc, 0, sizeof(*dc));
	dc->subject = ci->subject;
	dc->issuer = ci->issuer;
	dc->serial = ci->serial;
	dc->fingerprint = ci->fingerprint;
	dc->not_before = ci->not_before;
	dc->not_after = ci->not_after;
}

void db_cert_clear(struct db_cert *c)
{
	db_cols_free(cert_cols, NCERT_COLS, c, sizeof(*c));
}

int db_cert_exists(struct db *db, const char *fingerprint)
{
	return db_get_int(db,
	                  "SELECT 1 FROM certificates WHERE fingerprint = ?",
	                  DB_ARGS(DB_TEXT(fingerprint)), NULL, NULL, 0) == 1;
}

int db_cert_add(struct db *db, struct db_cert *c, char *err, size_t errlen)
{
	if (db_run(db,
	           "INSERT INTO certificates (kind, mailbox, subject, issuer,"
	           " serial, fingerprint, not_before, not_after, status,"
	           " key_backend, key_location, secret_file, cert_pem,"
	           " chain_pem, created_at, owner, nip, unit, contact)"
	           " VALUES (?,?,?,?,?,?,?,?,'active',?,?,?,?,?,?,?,?,?,?)",
	           DB_ARGS(DB_TEXT(c->kind), DB_TEXT(c->mailbox),
	                   DB_TEXT(c->subject), DB_TEXT(c->issuer),
	                   DB_TEXT(c->serial), DB_TEXT(c->fingerprint),
	                   DB_INT(c->not_before), DB_INT(c->not_after),
	                   DB_TEXT(c->key_backend), DB_TEXT(c->key_location),
	                   DB_TEXT(c->secret_file), DB_TEXT(c->cert_pem),
	                   DB_TEXT(c->chain_pem ? c->chain_pem : ""),
	                   DB_INT(time(NULL)), DB_TEXT(c->owner),
	                   DB_TEXT(c->nip), DB_TEXT(c->unit),
	                   DB_TEXT(c->contact)),
	           err, errlen) != 0)
		return -1;
	c->id = db_last_id(db);
	return 0;
}

int db_history_add(struct db *db, const char *address, long long cert_id,
                   const char *event, const char *detail, const char *actor,
                   char *err, size_t errlen)
{
	return db_run(db,
	              "INSERT INTO mailbox_history (address, cert_id, event,"
	              " detail, actor, at) VALUES (?,?,?,?,?,?)",
	              DB_ARGS(DB_TEXT(address), DB_ID(cert_id), DB_TEXT(event),
	                      DB_TEXT(detail), DB_TEXT(actor),
	                      DB_INT(time(NULL))),
	              err, errlen);
}

int db_map(struct db *db, const char *address, long long cert_id,
           const char *kind, const char *actor, char *err, size_t errlen)
{
	long long old = 0;

	if (db_get_int(db, "SELECT cert_id FROM mailboxes WHERE address = ?",
	               DB_ARGS(DB_TEXT(address)), &old, err, errlen) < 0)
		return -1;
	if (old > 0 && old != cert_id &&
	    (db_run(db,
	            "UPDATE certificates SET status = 'superseded'"
	            " WHERE id = ? AND status = 'active'",
	            DB_ARGS(DB_INT(old)), err, errlen) != 0 ||
	     db_history_add(db, address, old, "superseded", NULL, actor, err,
	                    errlen) != 0))
		return -1;
	if (db_run(db,
	           "INSERT INTO mailboxes (address, cert_id, kind, updated_at)"
	           " VALUES (?,?,?,?) ON CONFLICT (address) DO UPDATE SET"
	           " cert_id = excluded.cert_id, kind = excluded.kind,"
	           " updated_at = excluded.updated_at",
	           DB_ARGS(DB_TEXT(address), DB_INT(cert_id), DB_TEXT(kind),
	                   DB_INT(time(NULL))),
	           err, errlen) != 0)
		return -1;
	return db_history_add(db, address, cert_id, "mapped", kind, actor, err,
	                      errlen);
}

/* Each row of "SELECT <cert columns>, address ..." to fn. */
static int each_cert(struct db *db, const char *rest, db_cert_fn fn, void *arg,
                     char *err, size_t errlen)
{
	char sql[1024];
	struct db_q q;

	if (db_q_open(&q, db, cert_select(sql, sizeof(sql), rest), DB_NOARGS,
	              err, errlen) != 0)
		return -1;
	while (db_q_next(&q) > 0) {
		struct db_cert c;
		int stop;
		db_q_fill(&q, 0, cert_cols, NCERT_COLS, &c, 1);
		stop = fn(arg, db_q_text(&q, NCERT_COLS), &c);
		db_cert_clear(&c);
		if (stop)
			break;
	}
	return db_q_close(&q);
}

int db_mappings(struct db *db, db_cert_fn fn, void *arg, char *err,
                size_t errlen)
{
	return each_cert(db,
	                 ", m.address FROM mailboxes m"
	                 " JOIN certificates c ON c.id = m.cert_id"
	                 " ORDER BY m.address",
	                 fn, arg, err, errlen);
}

int db_certs(struct db *db, db_cert_fn fn, void *arg, char *err, size_t errlen)
{
	return each_cert(db,
	                 ", m.address FROM certificates c"
	                 " LEFT JOIN mailboxes m ON m.cert_id = c.id"
	                 " ORDER BY c.mailbox, c.id DESC",
	                 fn, arg, err, errlen);
}

/* What db_revoke matches, in certificates and recipient_certs alike: ?1
 * the serial, ?2 the issuer (NULL: any). */
#define REVOKE_WHERE                                         \
	" WHERE serial = ?1 AND (?2 IS NULL OR issuer = ?2)" \
	" AND status != 'revoked'"

struct revoke {
	const char *issuer, *serial, *reason, *actor;
	time_t when;
	int count;
};

/* Revoke the matching rows of table (certificates or recipient_certs),
 * whatever their number, adding them to r->count: the history is written
 * from the rows about to change (address and cert_id: the columns named,
 * event and detail as given), then they change. */
static int revoke_in(struct db *db, const char *table, const char *address,
                     const char *cert_id, const char *event, const char *detail,
                     struct revoke *r, char *err, size_t errlen)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
	         "INSERT INTO mailbox_history (address, cert_id, event,"
	         " detail, actor, at) SELECT %s, %s, ?3, ?4, ?5, ?6"
	         " FROM %s" REVOKE_WHERE " ORDER BY id",
	         address, cert_id, table);
	if (db_run(db, sql,
	           DB_ARGS(DB_TEXT(r->serial), DB_TEXT(r->issuer),
	                   DB_TEXT(event), DB_TEXT(detail), DB_TEXT(r->actor),
	                   DB_INT(time(NULL))),
	           err, errlen) != 0)
		return -1;
	snprintf(sql, sizeof(sql),
	         "UPDATE %s SET status = 'revoked', revoked_at = ?3,"
	         " revocation_reason = ?4" REVOKE_WHERE,
	         table);
	if (db_run(db, sql,
	           DB_ARGS(DB_TEXT(r->serial), DB_TEXT(r->issuer),
	                   DB_INT(r->when), DB_TEXT(r->reason)),
	           err, errlen) != 0)
		return -1;
	r->count += db_changes(db);
	return 0;
}

/* Signing certificates ("revoked", detail the reason), then recipient
 * certificates ("recipient-revoked", detail the serial). */
static int revoke_rows(struct db *db, void *arg, char *err, size_t errlen)
{
	struct revoke *r = arg;

	if (revoke_in(db, "certificates", "mailbox", "id", "revoked", r->reason,
	              r, err, errlen) != 0 ||
	    revoke_in(db, "recipient_certs", "address", "NULL",
	              "recipient-revoked", r->serial, r, err, errlen) != 0)
		return -1;
	return 0;
}

int db_revoke(struct db *db, const char *issuer, const char *serial,
              const char *reason, time_t when, const char *actor, int *count,
              char *err, size_t errlen)
{
	struct revoke r = { issuer, serial, reason, actor, when, 0 };
	int rc = db_atomic(db, revoke_rows, &r, err, errlen);

	*count = rc == 0 ? r.count : 0;
	return rc;
}

int db_crl_add(struct db *db, const char *issuer, time_t this_update,
               time_t next_update, int entries, char *err, size_t errlen)
{
	return db_run(db,
	              "INSERT INTO crls (issuer, this_update, next_update,"
	              " entries, imported_at) VALUES (?,?,?,?,?)",
	              DB_ARGS(DB_TEXT(issuer), DB_INT(this_update),
	                      DB_INT(next_update), DB_INT(entries),
	                      DB_INT(time(NULL))),
	              err, errlen);
}

int db_cert_find(struct db *db, const char *spec, struct db_cert *out,
                 char *err, size_t errlen)
{
	char sql[1024], ids[128] = "";
	struct db_q q;
	int n = 0;

	memset(out, 0, sizeof(*out));
	if (db_q_open(&q, db,
	              cert_select(sql, sizeof(sql),
	                          " FROM certificates c"
	                          " WHERE c.fingerprint = upper(?1)"
	                          " OR c.serial = upper(?1)"
	                          " OR CAST(c.id AS TEXT) = ?1 ORDER BY c.id"),
	              DB_ARGS(DB_TEXT(spec)), err, errlen) != 0)
		return -1;
	while (db_q_next(&q) > 0) {
		size_t used = strlen(ids);
		if (n++ == 0)
			db_q_fill(&q, 0, cert_cols, NCERT_COLS, out, 1);
		snprintf(ids + used, sizeof(ids) - used, "%s%lld",
		         used ? ", id " : "id ", db_q_int(&q, 0));
	}
	if (db_q_close(&q) != 0) {
		db_cert_clear(out);
		return -1;
	}
	if (n > 1) {
		db_cert_clear(out);
		return seterr(err, errlen,
		              "'%s' is ambiguous (%s): give the fingerprint",
		              spec, ids);
	}
	return n;
}

int db_unmap(struct db *db, const char *address, const char *actor, char *err,
             size_t errlen)
{
	long long id = 0;
	int found = db_get_int(db,
	                       "DELETE FROM mailboxes WHERE address = ?"
	                       " RETURNING cert_id",
	                       DB_ARGS(DB_TEXT(address)), &id, err, errlen);

	if (found <= 0)
		return found;
	if (db_history_add(db, address, id, "unmapped", NULL, actor, err,
	                   errlen) != 0)
		return -1;
	return 1;
}

int db_revoke_id(struct db *db, long long id, const char *reason, time_t when,
                 const char *actor, char *err, size_t errlen)
{
	struct db_q q;
	char *mailbox = NULL;
	int changed = 0;

	if (db_q_open(&q, db,
	              "UPDATE certificates SET status = 'revoked',"
	              " revoked_at = ?, revocation_reason = ?"
	              " WHERE id = ? AND status != 'revoked'"
	              " RETURNING mailbox",
	              DB_ARGS(DB_INT(when), DB_TEXT(reason), DB_INT(id)), err,
	              errlen) != 0)
		return -1;
	while (db_q_next(&q) > 0) {
		free(mailbox);
		mailbox = db_q_dup(&q, 0);
		changed = 1;
	}
	if (db_q_close(&q) != 0)
		changed = -1;
	else if (changed && db_history_add(db, mailbox, id, "revoked", reason,
	                                   actor, err, errlen) != 0)
		changed = -1;
	free(mailbox);
	return changed;
}

int db_crls(struct db *db, db_crl_fn fn, void *arg, char *err, size_t errlen)
{
	struct db_q q;

	if (db_q_open(&q, db,
	              "SELECT issuer, max(next_update) FROM crls"
	              " GROUP BY issuer ORDER BY issuer",
	              DB_NOARGS, err, errlen) != 0)
		return -1;
	while (db_q_next(&q) > 0)
		if (fn(arg, db_q_text(&q, 0), (time_t)db_q_int(&q, 1)))
			break;
	return db_q_close(&q);
}

int db_history(struct db *db, const char *address, long long cert_id,
               db_history_fn fn, void *arg, char *err, size_t errlen)
{
	struct db_q q;

	if (db_q_open(&q, db,
	              "SELECT at, address, cert_id, event, detail, actor"
	              " FROM mailbox_history"
	              " WHERE (?1 IS NOT NULL AND address = ?1)"
	              " OR (?2 > 0 AND cert_id = ?2) ORDER BY id",
	              DB_ARGS(DB_TEXT(address), DB_INT(cert_id)), err,
	              errlen) != 0)
		return -1;
	while (db_q_next(&q) > 0)
		if (fn(arg, (time_t)db_q_int(&q, 0), db_q_text(&q, 1),
		       db_q_int(&q, 2), db_q_text(&q, 3), db_q_text(&q, 4),
		       db_q_text(&q, 5)))
			break;
	return db_q_close(&q);
}

int db_serial_revoked_at(struct db *db, const char *issuer, const char *serial,
                         time_t *when, char *err, size_t errlen)
{
	long long at = 0;
	int rc =
	        db_get_int(db,
	                   "SELECT coalesce(revoked_at, 0) FROM revoked_serials"
	                   " WHERE issuer = ? AND serial = upper(?)",
	                   DB_ARGS(DB_TEXT(issuer), DB_TEXT(serial)), &at, err,
	                   errlen);

	if (when)
		*when = rc == 1 ? (time_t)at : 0;
	return rc;
}
