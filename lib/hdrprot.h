/*
 * hdrprot -- header protection of outbound mail (RFC 9788).
 *
 * The root part of the Cryptographic Payload (the first part of the
 * multipart/signed we build) gets a copy of the protected header fields
 * and the hp parameter on its Content-Type: hp="clear" when the message is
 * only signed, hp="cipher" when it is encrypted too.  Encrypted mail also
 * carries one HP-Outer field per protected field, saying what the outer
 * header section holds.  The outer header section is never changed: the
 * Header Confidentiality Policy is RFC 9788's hcp_no_confidentiality, so no
 * Subject is replaced by "[...]".
 */
#ifndef SMIME_HDRPROT_H
#define SMIME_HDRPROT_H

#include <stddef.h>

#include "mime.h"

/*
 * 1 when the field name (any case) is protected: From, To, Cc, Subject,
 * Date, Message-ID, Reply-To, In-Reply-To, References, or one of the nextra
 * names of extra (protected_headers).  0 otherwise.
 */
int hdrprot_is_protected(const char *name, char *const *extra, size_t nextra);

/*
 * NULL when name may be listed in protected_headers, else why not: it must
 * be an RFC 5322 field name, and neither structural (Content-*,
 * MIME-Version: they describe the part itself), Bcc (never copied where
 * every recipient reads it) nor HP-Outer.
 */
const char *hdrprot_name_refused(const char *name);

/*
 * 1 when a Content-Type value already has an hp parameter (then the
 * message is left without header protection rather than given two).
 */
int hdrprot_ct_has_hp(const char *value);

/* The header section of the root part, built by hdrprot_build. */
struct hdrprot {
	struct mime_header *h; /* Content-* first, then the protected copies */
	size_t n;
	char **own; /* strings made here (the new Content-Type, HP-Outer) */
	size_t nown;
};

/*
 * Build in out the root part's header fields: the nch Content-* fields of
 * ch (default_ct as Content-Type when ch has none; NULL: "text/plain;
 * charset=us-ascii") with `; hp="clear"` (cipher = 0) or `; hp="cipher"`
 * added to the Content-Type, then the nprot protected fields of prot in
 * their order, then with cipher one "HP-Outer: Name: value" per copied
 * field.  The copies stay 7-bit and foldable: a text value with 8-bit
 * octets (Subject, the protected_headers fields) becomes RFC 2047 "B"
 * words (charset utf-8, or unknown-8bit when the octets are not UTF-8); a
 * structured field (From, To, Cc, Date, Message-ID, Reply-To, In-Reply-To,
 * References) with 8-bit octets, and a field with a run of over 900
 * octets without a blank, are left out.  7-bit strings of ch and prot are
 * referenced, not copied: they must outlive out.  Returns 0, or -1 when
 * out of memory.
 */
int hdrprot_build(const struct mime_header *ch, size_t nch,
                  const char *default_ct, const struct mime_header *prot,
                  size_t nprot, int cipher, struct hdrprot *out);

/* Free what hdrprot_build made; NULL is fine. */
void hdrprot_free(struct hdrprot *hp);

#endif
