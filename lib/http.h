/*
 * http -- one HTTP(S) exchange through libcurl, for the clients that need
 * it: the RFC 3161 TSA (POST), CRL distribution points (GET with
 * If-Modified-Since) and OCSP responders (POST).  Only http and https,
 * also after a redirect; a bounded time and a bounded answer.
 */
#ifndef SMIME_HTTP_H
#define SMIME_HTTP_H

#include <stddef.h>
#include <time.h>

/* The most redirects followed (only to http and https). */
#define HTTP_MAX_REDIRS 3

struct http_req {
	const char *url;
	const char *what;    /* who answers, for errors: "TSA", "CRL" ... */
	long timeout_ms;     /* the whole exchange, > 0 */
	size_t max_response; /* the largest body read; more is refused */
	/* a POST when body is not NULL, else a GET */
	const unsigned char *body;
	size_t blen;
	const char
	        *content_type; /* the body's, e.g. "application/ocsp-request" */
	const char *accept;    /* NULL: none sent */
	time_t if_modified_since; /* a GET's condition; 0: none */
};

struct http_resp {
	long code;           /* the HTTP status, e.g. 200 or 304 */
	unsigned char *data; /* the body (free with http_resp_free) */
	size_t len;
	char ctype[128];      /* Content-Type, "none" when absent */
	time_t last_modified; /* the Last-Modified field, -1 when absent */
};

/*
 * Run the exchange rq describes.  Safe to call from several threads.
 * Returns 0 when a response came, whatever its status (the caller judges
 * out->code), or -1 with err filled in words that name rq->what (a
 * timeout, a body over max_response, a scheme other than http(s), too
 * many redirects).  Free out with http_resp_free either way.
 */
int http_fetch(const struct http_req *rq, struct http_resp *out, char *err,
               size_t errlen);

/* Free what http_fetch put in r and zero it; NULL is fine. */
void http_resp_free(struct http_resp *r);

#endif
