/* Unit tests for gitd/webhook: the signature checks of GitHub, GitLab,
 * Gitea and the generic form (HMAC-SHA256 test vectors computed with
 * OpenSSL here, and RFC 4231's case 2), and reading push payloads. */
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "err.h"
#include "tap.h"
#include "webhook.h"

static const char body[] =
    "{\"ref\":\"refs/heads/main\",\"before\":\"0000000000000000000000000000000000000000\","
    "\"after\":\"1111111111111111111111111111111111111111\",\"sender\":{\"login\":\"octocat\"},"
    "\"user_username\":\"jsmith\"}";

static void hmac_hex(char *out, const char *key, const char *data, size_t len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)data, len, mac, &n);
	for (unsigned i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

static struct webhook_request request(const char *data, size_t len)
{
	struct webhook_request r = {0};

	r.body = (const unsigned char *)data;
	r.body_len = len;
	return r;
}

static void test_rfc4231(void)
{
	/* RFC 4231 test case 2: key "Jefe" */
	const char *data = "what do ya want for nothing?";
	struct webhook_request r = request(data, strlen(data));
	const char *want =
	    "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

	r.slipway_signature = want;
	ok(webhook_verify(&r, (const unsigned char *)"Jefe", 4) == 0,
	   "RFC 4231 case 2 verifies in the generic form");
	r.slipway_signature =
	    "sha256=5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843";
	ok(webhook_verify(&r, (const unsigned char *)"Jefe", 4) == 0, "upper-case hex too");
}

static void test_signatures(void)
{
	char hex[65], sig[80];
	struct webhook_request r = request(body, strlen(body));
	const unsigned char *key = (const unsigned char *)"s3cret";

	hmac_hex(hex, "s3cret", body, strlen(body));
	snprintf(sig, sizeof(sig), "sha256=%s", hex);
	err_clear();
	ok(webhook_verify(&r, key, 6) == -1 && strstr(err_msg(), "no signature header"),
	   "an unsigned request is refused");
	ok(webhook_sender_of(&r) == WEBHOOK_UNSIGNED, "  as unsigned");

	r.github_signature = sig;
	ok(webhook_sender_of(&r) == WEBHOOK_GITHUB, "X-Hub-Signature-256 is GitHub");
	ok(webhook_verify(&r, key, 6) == 0, "GitHub's signature verifies");
	ok(webhook_verify(&r, (const unsigned char *)"other", 5) == -1 &&
	       strstr(err_msg(), "signature does not match"),
	   "with another secret it does not");
	r.body_len--;
	ok(webhook_verify(&r, key, 6) == -1, "nor over another body");
	r.body_len++;
	r.github_signature = hex;
	ok(webhook_verify(&r, key, 6) == -1 && strstr(err_msg(), "no sha256= prefix"),
	   "GitHub's signature needs its sha256= prefix");
	r.github_signature = "sha256=abc";
	ok(webhook_verify(&r, key, 6) == -1 && strstr(err_msg(), "not 64 hex digits"),
	   "a short signature is refused");
	ok(webhook_verify(&r, key, 0) == -1 && strstr(err_msg(), "secret is empty"),
	   "an empty secret verifies nothing");
	r.github_signature = NULL;

	r.gitea_signature = hex;
	ok(webhook_sender_of(&r) == WEBHOOK_GITEA, "X-Gitea-Signature is Gitea");
	ok(webhook_verify(&r, key, 6) == 0, "Gitea's bare hex signature verifies");
	r.gitea_signature = sig;
	ok(webhook_verify(&r, key, 6) == -1, "but not with a prefix");
	r.gitea_signature = NULL;

	r.gitlab_token = "s3cret";
	ok(webhook_sender_of(&r) == WEBHOOK_GITLAB, "X-Gitlab-Token is GitLab");
	ok(webhook_verify(&r, key, 6) == 0, "GitLab's token verifies");
	r.gitlab_token = "s3cre";
	ok(webhook_verify(&r, key, 6) == -1 && strstr(err_msg(), "token does not match"),
	   "a prefix of it does not");
	r.gitlab_token = "s3crets";
	ok(webhook_verify(&r, key, 6) == -1, "nor a longer one");
}

static void test_from_json(void)
{
	json_t *h = json_pack("{s:s, s:s, s:s, s:s}", "x-gitlab-token", "t", "x-gitlab-event",
	                      "Push Hook", "x-gitlab-event-uuid", "u-1", "x-github-event", "push");
	struct webhook_request r;

	webhook_request_from_json(&r, h, (const unsigned char *)"", 0);
	is_str(r.gitlab_token, "t", "GitLab's token read");
	is_str(r.event, "Push Hook", "its event header, not GitHub's");
	is_str(r.delivery, "u-1", "its delivery header");
	json_decref(h);
}

static void test_parse(void)
{
	struct webhook_request r = request(body, strlen(body));
	struct webhook_push p;

	r.github_signature = "x";
	r.event = "push";
	ok(webhook_parse(&p, &r) == 0 && p.kind == WEBHOOK_PUSH, "a GitHub push parses");
	is_str(p.refname, "refs/heads/main", "its ref");
	is_str(p.after, "1111111111111111111111111111111111111111", "its after");
	is_str(p.sender, "octocat", "the sender's login");
	webhook_push_release(&p);

	r.event = "ping";
	ok(webhook_parse(&p, &r) == 0 && p.kind == WEBHOOK_PING, "a ping");
	r.event = "issues";
	ok(webhook_parse(&p, &r) == 0 && p.kind == WEBHOOK_OTHER, "another event");
	r.event = NULL;
	ok(webhook_parse(&p, &r) == 0 && p.kind == WEBHOOK_OTHER, "no event header");

	r.github_signature = NULL;
	r.gitlab_token = "x";
	r.event = "Push Hook";
	ok(webhook_parse(&p, &r) == 0 && p.kind == WEBHOOK_PUSH, "a GitLab push parses");
	is_str(p.sender, "jsmith", "its sender is user_username");
	webhook_push_release(&p);
	r.event = "push";
	ok(webhook_parse(&p, &r) == 0 && p.kind == WEBHOOK_OTHER, "GitLab's event is Push Hook");

	r.gitlab_token = NULL;
	r.gitea_signature = "x";
	r.event = "push";
	r.body = (const unsigned char *)"{\"ref\":\"main\",\"before\":\"0\",\"after\":\"1\"}";
	r.body_len = strlen((const char *)r.body);
	ok(webhook_parse(&p, &r) == -1 && !p.refname, "a ref outside refs/ is refused");
	r.body =
	    (const unsigned char *)"{\"ref\":\"refs/heads/main\",\"before\":\"0\",\"after\":\"1\"}";
	r.body_len = strlen((const char *)r.body);
	ok(webhook_parse(&p, &r) == -1 && strstr(err_msg(), "object ids"),
	   "before and after must be object ids");
	r.body = (const unsigned char *)"[";
	r.body_len = 1;
	ok(webhook_parse(&p, &r) == -1 && strstr(err_msg(), "not a JSON object"),
	   "a body that is not JSON is refused");
}

int main(void)
{
	test_rfc4231();
	test_signatures();
	test_from_json();
	test_parse();
	return tap_done();
}
