/*
 * evidence_text -- the verdict of evidence_check in words an OP clerk can
 * paste into a reply: one line, Indonesian first, then English, and the
 * Indonesian words for smime_verify's English reasons.
 */
#include "evidence_int.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

/* smime_verify's reasons by their start (smime_verify.c), in Indonesian.
 * A reason not listed gets the last, general, words. */
static const struct {
	const char *prefix, *id;
} reasons[] = {
	{ "body altered after signing",
	  "isi pesan diubah setelah ditandatangani" },
	{ "signature does not verify",
	  "tanda tangan tidak cocok dengan kunci sertifikat" },
	{ "signer certificate is not in the signature",
	  "sertifikat penanda tangan tidak disertakan" },
	{ "signer certificate is for",
	  "alamat pengirim (From) tidak sesuai dengan sertifikat" },
	{ "signer certificate's extensions",
	  "sertifikat penanda tangan rusak" },
	{ "signed on", "ditandatangani di luar masa berlaku sertifikat" },
	{ "certificate expired", "masa berlaku sertifikat sudah habis" },
	{ "certificate not valid before", "sertifikat belum berlaku" },
	{ "certificate revoked", "sertifikat telah dicabut" },
	{ "issuer certificate", "sertifikat penerbit tidak berlaku" },
	{ "issuer not trusted", "penerbit sertifikat tidak dipercaya" },
	{ "certificate chain does not verify",
	  "rantai sertifikat tidak dapat diverifikasi" },
	{ "certificate is not for e-mail",
	  "sertifikat tidak untuk tanda tangan surel" },
	{ "certificate's key usage",
	  "sertifikat tidak untuk tanda tangan surel" },
	{ "signature verified, but the message has no single From",
	  "pesan tidak memiliki satu alamat pengirim (From)" },
	{ "revocation list unavailable",
	  "daftar pencabutan tidak dapat dibaca" },
	{ "trust bundle", "sertifikat akar (ca_file) tidak dapat dibaca" },
	{ "no trust bundle", "sertifikat akar (ca_file) tidak diatur" },
	{ "multipart/signed", "struktur pesan bertanda tangan rusak" },
	{ "empty part", "struktur pesan bertanda tangan rusak" },
	{ "the second part", "bagian tanda tangan tidak ditemukan" },
	{ "the signature", "tanda tangan rusak atau tidak dikenali" },
	{ "signature", "tanda tangan rusak atau tidak dikenali" },
	{ "not a signature", "tanda tangan rusak atau tidak dikenali" },
	{ "", "tanda tangan tidak dapat diterima" },
};

const char *ev_reason_id(const char *en)
{
	size_t i;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]) - 1; i++)
		if (en && strncmp(en, reasons[i].prefix,
		                  strlen(reasons[i].prefix)) == 0)
			break;
	return reasons[i].id;
}

/* "YYYY-MM-DD HH:MM:SS UTC"-like text of t (time_fmt's). */
static const char *when(time_t t, char *buf, size_t len)
{
	return t ? time_fmt(t, buf, len) : "?";
}

/* The audit sentence in both languages. */
static void audit_words(const struct evidence *e, char *id, char *en,
                        size_t len)
{
	const struct evidence_audit *a = &e->audit;

	if (a->rows == 0 && a->chain == -1 && e->message_id == NULL) {
		snprintf(id, len, "tanpa Message-ID, log audit tidak dicari");
		snprintf(en, len, "no Message-ID, audit log not searched");
	} else if (a->rows == 0) {
		snprintf(id, len, "tidak ada catatan di log audit");
		snprintf(en, len, "no audit log row for this Message-ID");
	} else if (a->chain == 1) {
		snprintf(id, len,
		         "tercatat di log audit baris %lld, rantai hash utuh "
		         "sampai baris itu",
		         a->id);
		snprintf(en, len,
		         "recorded in the audit log at row %lld, hash chain "
		         "intact up to it",
		         a->id);
	} else {
		snprintf(id, len,
		         "log audit rusak pada baris %lld: catatan baris %lld "
		         "tidak dapat dipercaya",
		         a->broken_id, a->id);
		snprintf(en, len,
		         "audit log broken at row %lld: the hash chain up to "
		         "row %lld does not verify",
		         a->broken_id, a->id);
	}
}

void ev_verdict_text(struct evidence *e)
{
	char aid[300], aen[300], t[40];
	const char *mid = e->message_id ? e->message_id : "(tanpa Message-ID)";
	const char *mide = e->message_id ? e->message_id : "(no Message-ID)";
	const char *who = e->then.subject ? e->then.subject : "?";
	const char *serial = e->then.serial ? e->then.serial : "?";

	audit_words(e, aid, aen, sizeof(aid));
	if (e->status == EVIDENCE_UNCHECKED) {
		snprintf(e->verdict, sizeof(e->verdict),
		         "TIDAK DAPAT DIPERIKSA / COULD NOT CHECK: pesan %s: "
		         "%s. "
		         "/ message %s: %s.",
		         mid, e->reason_id, mide, e->reason_en);
	} else if (e->status == EVIDENCE_INVALID && e->signature_ok &&
	           e->audit.chain == 0) {
		snprintf(e->verdict, sizeof(e->verdict),
		         "TIDAK SAH / INVALID: tanda tangan pesan %s oleh %s "
		         "(serial %s) utuh, tetapi %s. / the signature of "
		         "message %s by %s (serial %s) is intact, but the %s.",
		         mid, who, serial, aid, mide, who, serial, aen);
	} else if (e->status == EVIDENCE_INVALID) {
		snprintf(e->verdict, sizeof(e->verdict),
		         "TIDAK SAH / INVALID: pesan %s: %s. / message %s: %s.",
		         mid, e->reason_id, mide, e->reason_en);
	} else if (e->reason_en[0]) {
		snprintf(e->verdict, sizeof(e->verdict),
		         "SAH PADA SAAT PENANDATANGANAN / VALID AT SIGNING "
		         "TIME: "
		         "pesan %s ditandatangani oleh %s (serial %s) pada %s; "
		         "%s; %s. / message %s was signed by %s (serial %s) on "
		         "%s; %s; %s.",
		         mid, who, serial, when(e->signing_time, t, sizeof(t)),
		         e->reason_id, aid, mide, who, serial, t, e->reason_en,
		         aen);
	} else {
		snprintf(e->verdict, sizeof(e->verdict),
		         "SAH / VALID: pesan %s ditandatangani oleh %s (serial "
		         "%s) pada %s, tanda tangan utuh dan sertifikat "
		         "berlaku; %s. / message %s was signed by %s (serial "
		         "%s) "
		         "on %s, the signature is intact and the certificate "
		         "valid; %s.",
		         mid, who, serial, when(e->signing_time, t, sizeof(t)),
		         aid, mide, who, serial, t, aen);
	}
}
