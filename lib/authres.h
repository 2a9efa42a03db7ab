/*
 * authres -- the Authentication-Results header field (RFC 8601) with the
 * smime method (RFC 7281): writing ours, and spotting incoming ones that
 * claim our authserv-id (which outsiders can forge; they are removed
 * before ours is added, as OpenDKIM and OpenDMARC do).
 *
 * The value written, on one line unless folding is asked for:
 *
 *   mx.banjarkota.go.id; smime=pass (signature verified, chain to
 *   CN=BSrE Root) (decrypted for andi@banjarkota.go.id, certificate 1A2B,
 *   AES-256-GCM) header.from=mitra@jabarprov.go.id
 *   body.smime-identifier=mitra@jabarprov.go.id body.smime-serial=1005
 *   body.smime-issuer="CN=BSrE Root,O=BSrE"
 *
 * Decryption: RFC 8601 registers no method for it, so it is said in a
 * second comment on the smime resinfo, after the reason (a comment is
 * CFWS, which every parser skips).  An unsigned message that was
 * decrypted (or not, and why) is "smime=none (not signed) (...)".
 *
 * Everything that comes from the message or a certificate (reason,
 * addresses, issuer, the note) is sanitized: CR, LF, other controls and
 * 8-bit bytes become '?', each piece is cut at AUTHRES_PIECE_MAX bytes;
 * values are RFC 2045 tokens when they can be, addresses local@domain
 * when they are plain, quoted-strings otherwise (quotes and backslashes
 * escaped); comments escape parentheses and backslashes.  So no input
 * can end the field, start a header or add a property.
 */
#ifndef SMIME_AUTHRES_H
#define SMIME_AUTHRES_H

#include <stddef.h>

#include "smime_verify.h"

/* The header field's name. */
#define AUTHRES_FIELD "Authentication-Results"

/* Longest piece taken from the message or a certificate (bytes). */
#define AUTHRES_PIECE_MAX 256

/*
 * The field value (without "Authentication-Results:") for verdict v (NULL:
 * not signed, smime=none) under authserv_id, with header.from when
 * header_from is not NULL and the decryption note (free text such as
 * "decrypted for andi@banjarkota.go.id, certificate 1A2B, AES-256-GCM", or
 * NULL) as a second comment.  eol NULL writes one line; otherwise eol
 * ("\n" for smfi_addheader, "\r\n" for a message file) is put before a
 * space wherever a line would pass 78 columns (counted after the field
 * name), never inside a quoted-string.  Returns a malloc'd string, or
 * NULL on out of memory or an empty authserv_id.
 */
char *authres_format(const char *authserv_id, const struct smime_verdict *v,
                     const char *header_from, const char *decrypt_note,
                     const char *eol);

/*
 * 1 when the Authentication-Results value (unfolded or not) names
 * authserv_id as its authserv-id: leading CFWS (spaces, folding, nested
 * comments) is skipped, the id is a token or a quoted-string, compared
 * case-insensitively with one trailing dot ignored on either side; what
 * follows (a version number, ";", the resinfos) does not matter, so a
 * field that claims our id but is malformed after it is still ours to
 * remove.  0 otherwise (also for NULL or empty arguments).
 */
int authres_is_ours(const char *value, const char *authserv_id);

#endif
