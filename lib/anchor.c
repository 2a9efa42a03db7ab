/* anchor -- RFC 3161 anchors of the audit hash chain (see anchor.h). */
#include "anchor.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

int anchor_digest(const char *hex, unsigned char out[TSA_DIGEST_LEN])
{
	size_t n = 0;

	if (hex == NULL || strlen(hex) != 2 * TSA_DIGEST_LEN ||
	    OPENSSL_hexstr2buf_ex(out, TSA_DIGEST_LEN, &n, hex, '\0') != 1 ||
	    n != TSA_DIGEST_LEN)
		return -1;
	return 0;
}

const char *anchor_problem_key(enum anchor_problem p)
{
	static const char *const keys[] = {
		[ANCHOR_OK] = "ok",
		[ANCHOR_UNCHECKED] = "token-unchecked",
		[ANCHOR_TOKEN] = "token-invalid",
		[ANCHOR_GEN_TIME] = "gen-time-changed",
		[ANCHOR_ROW_GONE] = "row-missing",
		[ANCHOR_HASH_CHANGED] = "hash-changed",
		[ANCHOR_CHAIN_BROKEN] = "chain-broken",
	};

	return (unsigned)p < sizeof(keys) / sizeof(keys[0]) ? keys[p] : "?";
}

/* p, with why filled from fmt (why may be NULL). */
static enum anchor_problem say(enum anchor_problem p, char *why, size_t whylen,
                               const char *fmt, ...) PRINTFLIKE(4, 5);

static enum anchor_problem say(enum anchor_problem p, char *why, size_t whylen,
                               const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return p;
}

enum anchor_problem anchor_check(const struct db_audit_anchor *a,
                                 const struct db_audit_check *chk, int chain_rc,
                                 const char *ca_file, char *why, size_t whylen)
{
	unsigned char digest[TSA_DIGEST_LEN];
	char err[512], t1[32], t2[32];
	time_t gen = 0;

	if (ca_file == NULL)
		return say(ANCHOR_UNCHECKED, why, whylen,
		           "its token cannot be checked: timestamp_ca_file is "
		           "not set");
	/* the token binds the hash column: a hash changed to fit a
	 * recomputed chain no longer is the imprint */
	if (anchor_digest(a->hash, digest) != 0)
		return say(ANCHOR_TOKEN, why, whylen,
		           "its hash column is not 64 hex digits");
	if (tsa_token_verify(a->token, a->token_len, digest, sizeof(digest),
	                     ca_file, &gen, err, sizeof(err)) != 0)
		return say(ANCHOR_TOKEN, why, whylen,
		           "its token does not verify against %s: %s", ca_file,
		           err);
	if (gen != a->gen_time)
		return say(ANCHOR_GEN_TIME, why, whylen,
		           "its gen_time column says %s, the token %s",
		           time_fmt(a->gen_time, t1, sizeof(t1)),
		           time_fmt(gen, t2, sizeof(t2)));
	if (!a->row_found)
		return say(ANCHOR_ROW_GONE, why, whylen,
		           "audit row %lld, which it stamps, is gone: rows "
		           "were deleted",
		           a->audit_id);
	if (strcmp(a->row_hash, a->hash) != 0)
		return say(ANCHOR_HASH_CHANGED, why, whylen,
		           "no longer matches the log: row %lld's hash is now "
		           "%s, the token stamps %s (the log was changed at or "
		           "before row %lld after %s)",
		           a->audit_id,
		           a->row_hash[0] ? a->row_hash : "missing", a->hash,
		           a->audit_id, time_fmt(gen, t1, sizeof(t1)));
	if (chain_rc != 0 && chk->problem != DB_AUDIT_ANCHOR_MISSING &&
	    chk->bad_id <= a->audit_id)
		return say(ANCHOR_CHAIN_BROKEN, why, whylen,
		           "no longer matches the log: the chain breaks at row "
		           "%lld, at or before row %lld, which it stamps",
		           chk->bad_id, a->audit_id);
	return say(ANCHOR_OK, why, whylen, "ok");
}
