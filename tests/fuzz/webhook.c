/* libFuzzer target: any body with any sender's event through webhook_parse
 * and webhook_verify. A push either parses into a ref under refs/ with
 * object ids of 40 or 64 hex digits and a sender of at most 256 bytes, or
 * fails with a message; nothing crashes or leaks. The first byte picks the
 * sender and the event. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const events[] = {"push", "ping", "Push Hook", "issues"};
	struct webhook_request r = {0};
	struct webhook_push p;
	int rc;

	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		r.github_signature = "sha256=00";
		break;
	case 1:
		r.gitlab_token = "token";
		break;
	case 2:
		r.gitea_signature = "00";
		break;
	default:
		r.slipway_signature =
		    "sha256=0000000000000000000000000000000000000000000000000000000000000000";
		break;
	}
	r.event = events[(data[0] >> 2) & 3];
	r.body = data + 1;
	r.body_len = size - 1;
	if (webhook_verify(&r, (const unsigned char *)"k", 1) == 0 && !r.gitlab_token)
		abort(); /* no fixed signature matches an HMAC */
	err_clear();
	rc = webhook_parse(&p, &r);
	if (rc == 0 && p.kind == WEBHOOK_PUSH) {
		size_t nb = strlen(p.before), na = strlen(p.after);

		if (strncmp(p.refname, "refs/", 5) || (nb != 40 && nb != 64) ||
		    (na != 40 && na != 64) || strlen(p.sender) > 256)
			abort();
		webhook_push_release(&p);
	} else if (rc < 0 && (!err_msg()[0] || p.refname)) {
		abort();
	}
	return 0;
}
