/* db_cert -- signing certificates, mailbox mappings, their history,
 * revocation and CRLs (see db.h). */
#include "certstore.h"
#include "db_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	free(c->kind);
	free(c->mailbox);
	free(c->subject);
	free(c->issuer);
	free(c->serial);
	free(c->fingerprint);
	free(c->status);
	free(c->key_backend);
	free(c->key_location);
	free(c->secret_file);
	free(c->cert_pem);
	free(c->chain_pem);
	free(c->revocation_reason);
	free(c->owner);
	free(c->nip);
	free(c->unit);
	free(c->contact);
	memset(c, 0, sizeof(*c));
}

int db_cert_exists(struct db *db, const char *fingerprint)
{
	sqlite3_stmt *st =
	        db_prep(db, "SELECT 1 FROM certificates WHERE fingerprint = ?",
	                NULL, 0);
	int found;

	if (st == NULL)
		return 0;
	db_bind_text(st, 1, fingerprint);
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

int db_cert_add(struct db *db, struct db_cert *c, char *err, size_t errlen)
{
	sqlite3_stmt *st =
	        db_prep(db,
	                "INSERT INTO certificates (kind, mailbox, subject, "
	                "issuer, serial,"
	                " fingerprint, not_before, not_after, status, "
	                "key_backend,"
	                " key_location, secret_file, cert_pem, chain_pem, "
	                "created_at,"
	                " owner, nip, unit, contact)"
	                " VALUES "
	                "(?,?,?,?,?,?,?,?,'active',?,?,?,?,?,?,?,?,?,?)",
	                err, errlen);

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, c->kind);
	db_bind_text(st, 2, c->mailbox);
	db_bind_text(st, 3, c->subject);
	db_bind_text(st, 4, c->issuer);
	db_bind_text(st, 5, c->serial);
	db_bind_text(st, 6, c->fingerprint);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)c->not_before);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)c->not_after);
	db_bind_text(st, 9, c->key_backend);
	db_bind_text(st, 10, c->key_location);
	db_bind_text(st, 11, c->secret_file);
	db_bind_text(st, 12, c->cert_pem);
	db_bind_text(st, 13, c->chain_pem ? c->chain_pem : "");
	sqlite3_bind_int64(st, 14, (sqlite3_int64)time(NULL));
	db_bind_text(st, 15, c->owner);
	db_bind_text(st, 16, c->nip);
	db_bind_text(st, 17, c->unit);
	db_bind_text(st, 18, c->contact);
	if (db_step_done(db, st, err, errlen) != 0)
		return -1;
	c->id = sqlite3_last_insert_rowid(db->h);
	return 0;
}

int db_history_add(struct db *db, const char *address, long long cert_id,
                   const char *event, const char *detail, const char *actor,
                   char *err, size_t errlen)
{
	sqlite3_stmt *st =
	        db_prep(db,
	                "INSERT INTO mailbox_history (address, cert_id,"
	                " event, detail, actor, at)"
	                " VALUES (?,?,?,?,?,?)",
	                err, errlen);

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, address);
	if (cert_id > 0)
		sqlite3_bind_int64(st, 2, cert_id);
	else
		sqlite3_bind_null(st, 2);
	db_bind_text(st, 3, event);
	db_bind_text(st, 4, detail);
	db_bind_text(st, 5, actor);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)time(NULL));
	return db_step_done(db, st, err, errlen);
}

int db_map(struct db *db, const char *address, long long cert_id,
           const char *kind, const char *actor, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	long long old = 0;

	st = db_prep(db, "SELECT cert_id FROM mailboxes WHERE address = ?", err,
	             errlen);
	if (st == NULL)
		return -1;
	db_bind_text(st, 1, address);
	if (sqlite3_step(st) == SQLITE_ROW)
		old = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (old > 0 && old != cert_id) {
		st = db_prep(db,
		             "UPDATE certificates SET status = 'superseded'"
		             " WHERE id = ? AND status = 'active'",
		             err, errlen);
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, old);
		if (db_step_done(db, st, err, errlen) != 0 ||
		    db_history_add(db, address, old, "superseded", NULL, actor,
		                   err, errlen) != 0)
			return -1;
	}
	st = db_prep(db,
	             "INSERT INTO mailboxes (address, cert_id, kind, "
	             "updated_at)"
	             " VALUES (?,?,?,?) ON CONFLICT (address) DO UPDATE SET"
	             " cert_id = excluded.cert_id, kind = excluded.kind,"
	             " updated_at = excluded.updated_at",
	             err, errlen);
	if (st == NULL)
		return -1;
	db_bind_text(st, 1, address);
	sqlite3_bind_int64(st, 2, cert_id);
	db_bind_text(st, 3, kind);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
	if (db_step_done(db, st, err, errlen) != 0)
		return -1;
	return db_history_add(db, address, cert_id, "mapped", kind, actor, err,
	                      errlen);
}

#define CERT_COLS                                                        \
	"c.id, c.kind, c.mailbox, c.subject, c.issuer, c.serial,"        \
	" c.fingerprint, c.not_before, c.not_after, c.status,"           \
	" c.key_backend, c.key_location, c.secret_file, c.cert_pem,"     \
	" c.chain_pem, c.created_at, c.revoked_at, c.revocation_reason," \
	" c.owner, c.nip, c.unit, c.contact"

static void row_to_cert(sqlite3_stmt *st, struct db_cert *c)
{
	c->id = sqlite3_column_int64(st, 0);
	c->kind = db_col_dup(st, 1);
	c->mailbox = db_col_dup(st, 2);
	c->subject = db_col_dup(st, 3);
	c->issuer = db_col_dup(st, 4);
	c->serial = db_col_dup(st, 5);
	c->fingerprint = db_col_dup(st, 6);
	c->not_before = (time_t)sqlite3_column_int64(st, 7);
	c->not_after = (time_t)sqlite3_column_int64(st, 8);
	c->status = db_col_dup(st, 9);
	c->key_backend = db_col_dup(st, 10);
	c->key_location = db_col_dup(st, 11);
	c->secret_file = db_col_dup(st, 12);
	c->cert_pem = db_col_dup(st, 13);
	c->chain_pem = db_col_dup(st, 14);
	c->created_at = (time_t)sqlite3_column_int64(st, 15);
	c->revoked_at = (time_t)sqlite3_column_int64(st, 16);
	c->revocation_reason = db_col_dup(st, 17);
	c->owner = db_col_dup(st, 18);
	c->nip = db_col_dup(st, 19);
	c->unit = db_col_dup(st, 20);
	c->contact = db_col_dup(st, 21);
}

static int each_cert(struct db *db, const char *sql, db_cert_fn fn, void *arg,
                     char *err, size_t errlen)
{
	sqlite3_stmt *st = db_prep(db, sql, err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_cert c;
		const unsigned char *addr = sqlite3_column_text(st, 22);
		int stop;
		memset(&c, 0, sizeof(c));
		row_to_cert(st, &c);
		stop = fn(arg, (const char *)addr, &c);
		db_cert_clear(&c);
		if (stop)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		seterr(err, errlen, "database: %s", db_errmsg(db));
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

int db_mappings(struct db *db, db_cert_fn fn, void *arg, char *err,
                size_t errlen)
{
	return each_cert(db,
	                 "SELECT " CERT_COLS ", m.address FROM mailboxes m"
	                 " JOIN certificates c ON c.id = m.cert_id"
	                 " ORDER BY m.address",
	                 fn, arg, err, errlen);
}

int db_certs(struct db *db, db_cert_fn fn, void *arg, char *err, size_t errlen)
{
	return each_cert(db,
	                 "SELECT " CERT_COLS ", m.address FROM certificates c"
	                 " LEFT JOIN mailboxes m ON m.cert_id = c.id"
	                 " ORDER BY c.mailbox, c.id DESC",
	                 fn, arg, err, errlen);
}

/* The recipient half of db_revoke: adds the rows changed to *count. */
static int revoke_recipients(struct db *db, const char *issuer,
                             const char *serial, const char *reason,
                             time_t when, const char *actor, int *count,
                             char *err, size_t errlen)
{
	sqlite3_stmt *st =
	        db_prep(db,
	                "UPDATE recipient_certs SET status = 'revoked',"
	                " revoked_at = ?1, revocation_reason = ?2"
	                " WHERE serial = ?3 AND (?4 IS NULL OR issuer = ?4)"
	                " AND status != 'revoked'"
	                " RETURNING address",
	                err, errlen);
	char **addrs = NULL;
	int rc, n = 0;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)when);
	db_bind_text(st, 2, reason);
	db_bind_text(st, 3, serial);
	db_bind_text(st, 4, issuer);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char **p = realloc(addrs, (size_t)(n + 1) * sizeof(*addrs));
		if (p == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		addrs = p;
		addrs[n++] = db_col_dup(st, 0);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		seterr(err, errlen, "database: %s",
		       rc == SQLITE_NOMEM ? "out of memory" : db_errmsg(db));
		rc = -1;
	} else
		rc = 0;
	for (int i = 0; i < n; i++) {
		if (rc == 0)
			rc = db_history_add(db, addrs[i], 0,
			                    "recipient-revoked", serial, actor,
			                    err, errlen);
		free(addrs[i]);
	}
	free(addrs);
	if (rc == 0)
		*count += n;
	return rc;
}

int db_revoke(struct db *db, const char *issuer, const char *serial,
              const char *reason, time_t when, const char *actor, int *count,
              char *err, size_t errlen)
{
	sqlite3_stmt *st =
	        db_prep(db,
	                "UPDATE certificates SET status = 'revoked',"
	                " revoked_at = ?, revocation_reason = ?"
	                " WHERE serial = ? AND (? IS NULL OR issuer = ?)"
	                " AND status != 'revoked'"
	                " RETURNING mailbox, id",
	                err, errlen);
	int rc;

	*count = 0;
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)when);
	db_bind_text(st, 2, reason);
	db_bind_text(st, 3, serial);
	db_bind_text(st, 4, issuer);
	db_bind_text(st, 5, issuer);
	struct rev {
		char *mailbox;
		long long id;
	} revs[64];
	int n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n < 64) {
			revs[n].mailbox = db_col_dup(st, 0);
			revs[n].id = sqlite3_column_int64(st, 1);
			n++;
		}
		(*count)++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		for (int i = 0; i < n; i++)
			free(revs[i].mailbox);
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	}
	rc = 0;
	for (int i = 0; i < n; i++) {
		if (rc == 0)
			rc = db_history_add(db, revs[i].mailbox, revs[i].id,
			                    "revoked", reason, actor, err,
			                    errlen);
		free(revs[i].mailbox);
	}
	if (rc != 0)
		return rc;
	return revoke_recipients(db, issuer, serial, reason, when, actor, count,
	                         err, errlen);
}

int db_crl_add(struct db *db, const char *issuer, time_t this_update,
               time_t next_update, int entries, char *err, size_t errlen)
{
	sqlite3_stmt *st = db_prep(db,
	                           "INSERT INTO crls (issuer, this_update,"
	                           " next_update, entries, imported_at)"
	                           " VALUES (?,?,?,?,?)",
	                           err, errlen);

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, issuer);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)this_update);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)next_update);
	sqlite3_bind_int(st, 4, entries);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
	return db_step_done(db, st, err, errlen);
}

int db_cert_find(struct db *db, const char *spec, struct db_cert *out,
                 char *err, size_t errlen)
{
	sqlite3_stmt *st =
	        db_prep(db,
	                "SELECT " CERT_COLS ", NULL FROM certificates c"
	                " WHERE c.fingerprint = upper(?1)"
	                " OR c.serial = upper(?1)"
	                " OR CAST(c.id AS TEXT) = ?1 ORDER BY c.id",
	                err, errlen);
	int rc, n = 0;
	char ids[128] = "";

	memset(out, 0, sizeof(*out));
	if (st == NULL)
		return -1;
	db_bind_text(st, 1, spec);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t used = strlen(ids);
		if (n++ == 0)
			row_to_cert(st, out);
		snprintf(ids + used, sizeof(ids) - used, "%s%lld",
		         used ? ", id " : "id ",
		         (long long)sqlite3_column_int64(st, 0));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		db_cert_clear(out);
		return seterr(err, errlen, "database: %s", db_errmsg(db));
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
	sqlite3_stmt *st = db_prep(db,
	                           "DELETE FROM mailboxes WHERE address = ?"
	                           " RETURNING cert_id",
	                           err, errlen);
	long long id = 0;
	int rc, found = 0;

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, address);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		found = 1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	if (!found)
		return 0;
	if (db_history_add(db, address, id, "unmapped", NULL, actor, err,
	                   errlen) != 0)
		return -1;
	return 1;
}

int db_revoke_id(struct db *db, long long id, const char *reason, time_t when,
                 const char *actor, char *err, size_t errlen)
{
	sqlite3_stmt *st = db_prep(db,
	                           "UPDATE certificates SET status = 'revoked',"
	                           " revoked_at = ?, revocation_reason = ?"
	                           " WHERE id = ? AND status != 'revoked'"
	                           " RETURNING mailbox",
	                           err, errlen);
	char *mailbox = NULL;
	int rc, changed = 0;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)when);
	db_bind_text(st, 2, reason);
	sqlite3_bind_int64(st, 3, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		free(mailbox);
		mailbox = db_col_dup(st, 0);
		changed = 1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(mailbox);
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	}
	if (changed && db_history_add(db, mailbox, id, "revoked", reason, actor,
	                              err, errlen) != 0)
		changed = -1;
	free(mailbox);
	return changed;
}

int db_crls(struct db *db, db_crl_fn fn, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *st = db_prep(db,
	                           "SELECT issuer, max(next_update) FROM crls"
	                           " GROUP BY issuer ORDER BY issuer",
	                           err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (fn(arg, (const char *)sqlite3_column_text(st, 0),
		       (time_t)sqlite3_column_int64(st, 1)))
			break;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sqlite3_finalize(st);
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	}
	sqlite3_finalize(st);
	return 0;
}

int db_history(struct db *db, const char *address, long long cert_id,
               db_history_fn fn, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *st =
	        db_prep(db,
	                "SELECT at, address, cert_id, event, detail, actor"
	                " FROM mailbox_history"
	                " WHERE (?1 IS NOT NULL AND address = ?1)"
	                " OR (?2 > 0 AND cert_id = ?2) ORDER BY id",
	                err, errlen);
	int rc;

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, address);
	sqlite3_bind_int64(st, 2, cert_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (fn(arg, (time_t)sqlite3_column_int64(st, 0),
		       (const char *)sqlite3_column_text(st, 1),
		       sqlite3_column_int64(st, 2),
		       (const char *)sqlite3_column_text(st, 3),
		       (const char *)sqlite3_column_text(st, 4),
		       (const char *)sqlite3_column_text(st, 5)))
			break;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return seterr(err, errlen, "database: %s", db_errmsg(db));
	return 0;
}
