/* http -- one HTTP(S) exchange through libcurl (see http.h). */
#include "http.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

static pthread_once_t http_curl_once = PTHREAD_ONCE_INIT;
static CURLcode http_curl_rc = CURLE_FAILED_INIT;

/* curl_global_init is not thread-safe in every libcurl: run it once. */
static void http_curl_init(void)
{
	http_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The body being read, bounded by max. */
struct http_body {
	struct http_resp *r;
	size_t max;
	int too_big;
};

static size_t http_body_write(char *p, size_t size, size_t n, void *arg)
{
	struct http_body *b = arg;
	unsigned char *grown;
	size_t len = size * n;

	if (len > b->max - b->r->len) {
		b->too_big = 1;
		return 0; /* libcurl stops with CURLE_WRITE_ERROR */
	}
	grown = realloc(b->r->data, b->r->len + len + 1);
	if (grown == NULL)
		return 0;
	memcpy(grown + b->r->len, p, len);
	b->r->data = grown;
	b->r->len += len;
	return len;
}

/* The options of one exchange: only http and https, also after a
 * redirect; a POST stays a POST when redirected.  Returns 0 or -1. */
static int http_setup(CURL *c, const struct http_req *rq,
                      struct curl_slist *hdr, struct http_body *out, char *cerr)
{
	int bad = 0;

#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
	bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") !=
	       CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") !=
	       CURLE_OK;
#else
	bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS,
	                        (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) !=
	       CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS,
	                        (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) !=
	       CURLE_OK;
#endif
	bad |= curl_easy_setopt(c, CURLOPT_URL, rq->url) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, rq->timeout_ms) !=
	       CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, rq->timeout_ms) !=
	       CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)HTTP_MAX_REDIRS) !=
	       CURLE_OK;
	if (rq->body != NULL) {
		bad |= curl_easy_setopt(c, CURLOPT_POSTREDIR,
		                        (long)CURL_REDIR_POST_ALL) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body) !=
		       CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		                        (curl_off_t)rq->blen) != CURLE_OK;
	} else if (rq->if_modified_since > 0) {
		bad |= curl_easy_setopt(c, CURLOPT_TIMECONDITION,
		                        (long)CURL_TIMECOND_IFMODSINCE) !=
		       CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_TIMEVALUE_LARGE,
		                        (curl_off_t)rq->if_modified_since) !=
		       CURLE_OK;
	}
	bad |= curl_easy_setopt(c, CURLOPT_FILETIME, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
	                        (curl_off_t)rq->max_response) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_write) !=
	       CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, out) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_USERAGENT,
	                        "smime-milter/" SMIME_VERSION) != CURLE_OK;
	return bad ? -1 : 0;
}

/* A libcurl failure in words. */
static int http_error(CURLcode rc, const char *cerr, const struct http_req *rq,
                      const struct http_body *out, char *err, size_t errlen)
{
	const char *why = *cerr ? cerr : curl_easy_strerror(rc);
	const char *w = rq->what;

	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return seterr(err, errlen, "%s timed out after %ld ms", w,
		              rq->timeout_ms);
	case CURLE_FILESIZE_EXCEEDED:
		return seterr(err, errlen,
		              "%s response is larger than %zu bytes", w,
		              rq->max_response);
	case CURLE_WRITE_ERROR:
		if (out->too_big)
			return seterr(err, errlen,
			              "%s response is larger than %zu bytes", w,
			              rq->max_response);
		return seterr(err, errlen, "%s response: out of memory", w);
	case CURLE_UNSUPPORTED_PROTOCOL:
		return seterr(err, errlen,
		              "%s URL or redirect is not http or https: %s", w,
		              why);
	case CURLE_TOO_MANY_REDIRECTS:
		return seterr(err, errlen, "%s redirected more than %d times",
		              w, HTTP_MAX_REDIRS);
	default:
		return seterr(err, errlen, "%s request failed: %s", w, why);
	}
}

/* The request's header fields; NULL when out of memory. */
static struct curl_slist *http_headers(const struct http_req *rq)
{
	char line[256];
	struct curl_slist *hdr = NULL, *h;

	/* no "Expect: 100-continue" round trip before a POST body */
	hdr = curl_slist_append(NULL, "Expect:");
	if (hdr != NULL && rq->content_type != NULL) {
		snprintf(line, sizeof(line), "Content-Type: %s",
		         rq->content_type);
		h = curl_slist_append(hdr, line);
		if (h == NULL)
			goto oom;
		hdr = h;
	}
	if (hdr != NULL && rq->accept != NULL) {
		snprintf(line, sizeof(line), "Accept: %s", rq->accept);
		h = curl_slist_append(hdr, line);
		if (h == NULL)
			goto oom;
		hdr = h;
	}
	return hdr;
oom:
	curl_slist_free_all(hdr);
	return NULL;
}

int http_fetch(const struct http_req *rq, struct http_resp *out, char *err,
               size_t errlen)
{
	char cerr[CURL_ERROR_SIZE] = "";
	struct http_body body = { out, 0, 0 };
	struct curl_slist *hdr = NULL;
	curl_off_t filetime = -1;
	char *ct = NULL;
	CURLcode rc;
	CURL *c = NULL;
	int ret = -1;

	memset(out, 0, sizeof(*out));
	out->last_modified = -1;
	snprintf(out->ctype, sizeof(out->ctype), "none");
	body.max = rq->max_response;
	pthread_once(&http_curl_once, http_curl_init);
	if (http_curl_rc != CURLE_OK)
		return seterr(err, errlen, "cannot start libcurl: %s",
		              curl_easy_strerror(http_curl_rc));
	c = curl_easy_init();
	hdr = http_headers(rq);
	if (c == NULL || hdr == NULL) {
		seterr(err, errlen, "%s request: out of memory", rq->what);
		goto done;
	}
	if (http_setup(c, rq, hdr, &body, cerr) != 0) {
		seterr(err, errlen,
		       "libcurl refused an option (needs http, "
		       "https and protocol limits)");
		goto done;
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		http_error(rc, cerr, rq, &body, err, errlen);
		goto done;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->code);
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	if (ct != NULL)
		snprintf(out->ctype, sizeof(out->ctype), "%s", ct);
	if (curl_easy_getinfo(c, CURLINFO_FILETIME_T, &filetime) == CURLE_OK &&
	    filetime >= 0)
		out->last_modified = (time_t)filetime;
	ret = 0;
done:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return ret;
}

void http_resp_free(struct http_resp *r)
{
	if (r == NULL)
		return;
	free(r->data);
	memset(r, 0, sizeof(*r));
	r->last_modified = -1;
}
