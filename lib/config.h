/*
 * config -- the libconfig file turned into an immutable struct.
 *
 * Every key is described in one table (type, default, range) in config.c;
 * errors name file:line from libconfig's own line numbers.  A loaded config
 * is never modified: reload builds a new one.
 */
#ifndef SMIME_CONFIG_H
#define SMIME_CONFIG_H

#include <stddef.h>
#include <sys/socket.h>

#define CONFIG_DEFAULT_PATH "/etc/smime-milter/smime-milter.conf"

enum action { ACTION_TEMPFAIL = 0, ACTION_ACCEPT, ACTION_REJECT };

/* Encryption policy for one recipient (issue 5). */
enum enc_mode { ENC_NEVER = 0, ENC_OPPORTUNISTIC, ENC_REQUIRED };

/*
 * One rule of the encrypt list.  Patterns are lower-case: "user@domain",
 * "domain" (that domain only), "*.domain" (its subdomains and itself) or
 * "*" (every address).
 */
struct encrypt_rule {
	char **recipients;
	size_t nrecipients;
	char **senders; /* From addresses the rule is limited to (0: any) */
	size_t nsenders;
	enum enc_mode mode;
	int line; /* in the configuration file */
};

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int bits;
};

struct config {
	char *path;
	char *socket;
	char *socket_mode;  /* of a unix socket, octal text ("0660") */
	char *socket_group; /* group of a unix socket, or NULL */
	char *database;
	char *key_dir;
	char *temp_dir;
	char *pidfile;
	char *user;
	char *ca_file;
	char *timestamp_url;         /* RFC 3161 TSA (issue 14), or NULL */
	char *timestamp_ca_file;     /* the TSA's trust bundle */
	long long timestamp_timeout; /* seconds per TSA request */
	char *on_timestamp_failure;  /* "sign" (without a token) or
	                                "tempfail" */
	char *syslog_facility;
	char *digest; /* sha256, sha384 or sha512 */
	char **domains;
	size_t ndomains;
	struct cidr *internal;
	size_t ninternal;
	enum action on_error;
	enum action on_no_certificate;
	long long max_memory_body;
	int log_verbose;
	long long alert_critical_days; /* smimectl expiring: CRITICAL within */
	long long *alert_days;         /* smimectl notify thresholds, sorted
	                                  descending */
	size_t nalert_days;
	char *op_admin;       /* copy of every alert (registration authority) */
	char *sendmail_path;  /* local MTA for alerts */
	char *alert_template; /* file with the alert text, or NULL: built in */
	char *alert_from;     /* From: of alerts */
	char *pkcs11_module;  /* default PKCS#11 module for pkcs11: keys */
	char **pkcs11_token;  /* pkcs11_tokens: label ... */
	char **pkcs11_pin_file; /* ... and its PIN file */
	size_t npkcs11_tokens;
	long long pkcs11_sessions;    /* session pool per token */
	long long pkcs11_retry;       /* seconds between reconnect attempts */
	struct encrypt_rule *encrypt; /* encryption policy (issue 5) */
	size_t nencrypt;
	char *encrypt_cipher;      /* aes-256-cbc, aes-128-cbc, aes-256-gcm,
	                              aes-128-gcm */
	char *encrypt_rsa_padding; /* pkcs1 or oaep */
	int harvest; /* store certificates of inbound signed mail */
	/* the inbound half (issue 13) */
	int inbound_decrypt; /* decrypt mail to internal mailboxes */
	int inbound_verify;  /* verify inbound signatures, stamp them */
	char *authserv_id;   /* ours in Authentication-Results */
	enum action on_bad_signature; /* accept or reject (550 5.7.1) */
	int inbound_unwrap_opaque; /* replace opaque signed-data by content */
	int inbound_subject_tag;   /* prefix the Subject with a verdict tag */
	char *tag_pass;            /* inbound_subject_tag_pass: smime=pass */
	char *tag_fail;            /* ..._fail: smime=fail or permerror */
	char *tag_unverified;      /* ..._unverified: neutral or temperror */
	char *tag_unsigned;        /* ..._unsigned: decrypted, smime=none */
	/* header protection of outbound mail (issue 14, RFC 9788) */
	int header_protection;     /* copy the protected fields, hp= */
	char **protected_headers;  /* more field names to protect */
	size_t nprotected_headers; /* (lower-case, checked by hdrprot) */
	/* smimectl crl fetch (issue 15) */
	char **crl_urls; /* CRLs fetched besides the distribution points */
	size_t ncrl_urls;
	long long crl_timeout;  /* seconds per download */
	long long crl_max_size; /* bytes, the largest CRL accepted */
	/* OCSP (issue 15) */
	int ocsp;                /* ask responders before trusting a cert */
	long long ocsp_timeout;  /* seconds per OCSP request */
	char *ocsp_responder;    /* URL for every certificate, or NULL: the
	                              certificate's AIA OCSP URL */
	int line_ocsp_responder; /* (line number) */
	/* database outages (issue 16): audit rows the database cannot take
	 * wait in memory up to audit_queue_max, then in the audit_spool file */
	long long audit_queue_max; /* rows */
	char *audit_spool;         /* path ("": rows stay in memory) */
	/* more than one gateway (issue 16) */
	char *node_name;    /* the audit chain of this host: the setting,
	                        or the host name */
	int line_node_name; /* (line number) */
	/* line numbers of keys, for errors found after loading (0 = default) */
	int line_database, line_key_dir, line_temp_dir, line_ca_file;
	int line_protected_headers;
	int line_timestamp_url, line_timestamp_ca_file;
};

/*
 * Load and validate the file at path.  On success *out is a new config and 0
 * is returned.  On failure returns -1 and err holds one problem per line,
 * each "file:line: message".
 */
int config_load(const char *path, struct config **out, char *err,
                size_t errlen);

/*
 * The checks only the filter needs, after config_load: temp_dir is an
 * existing directory (smimectl never spools, so it does not ask).  Returns
 * 0, or -1 with "file:line: temp_dir: ..." in err (" temp_dir (default)"
 * instead of a line when the file does not set it).
 */
int config_check_milter(const struct config *cfg, char *err, size_t errlen);

/*
 * 1 when s is an authserv-id (RFC 8601) that can be written unquoted: 1 to
 * 255 printable ASCII characters without space or RFC 2045 tspecials (so no
 * CR, LF or ';').  A host name always is.
 */
int config_authserv_valid(const char *s);

/* Free a config; NULL is fine. */
void config_free(struct config *cfg);

/* 1 when domain (lower-case) is one of the signing domains. */
int config_signing_domain(const struct config *cfg, const char *domain);

/* Parse "a.b.c.d/n", "x::y/n" or a bare address.  Returns 0 or -1. */
int cidr_parse(const char *s, struct cidr *out);

/* "never", "opportunistic" or "required". */
const char *enc_mode_name(enum enc_mode m);

/* Name of an action ("tempfail", "accept", "reject"). */
const char *action_name(enum action a);

#endif
