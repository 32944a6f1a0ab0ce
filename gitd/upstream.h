/* upstream: a Remote's spec.upstream, in the pipeline worker: a signed
 * webhook or a poll fetches the upstream's new commits into a quarantine,
 * and the push pipeline (pipeline_serve) runs them with trigger "webhook"
 * or "poll" (docs/webhooks.md).
 *
 * Processes: the worker (pipesrv.h) reads the Remote and its Secret, checks
 * the webhook, then frees its API client (wiping the token) and forks a
 * fetch process that holds the upstream's credentials and no API token: it
 * enters the fetch sandbox (sandbox_enter_fetch: its repository, the
 * network, name resolution), connects with libgit2, lists the upstream's
 * refs, and
 * downloads the followed branches that moved into REPO/objects/incoming-*,
 * stopping past --max-pack-size. The pack streams through packfile_check
 * (packfile.h) before libgit2's indexer sees a byte, so a pack holding an
 * object over --max-object-size is refused from that object's entry header,
 * as a push is, before anything inflates or indexes it. The worker then moves each ref with a
 * compare-and-swap from the value it had before the fetch (as a push does),
 * refusing a non-fast-forward when spec.denyNonFastForwards is set, and
 * runs the pipeline after the ref moved (a push with slipway.wait=false).
 *
 * The Secret (spec.upstream.secretRef.name, in the Remote's namespace) may
 * hold, each optional:
 *   webhook-secret  the webhook's secret (required for webhooks)
 *   token           https: a token, sent as the password of
 *   username        ["x-access-token"; GitLab: "oauth2"]
 *   ca.crt          https: PEM certificates to trust instead of the system's
 *   ssh-privatekey  ssh: an OpenSSH private key (no passphrase)
 *   known_hosts     ssh: OpenSSH known_hosts lines; required for ssh: the
 *                   upstream's host key must be in it */
#ifndef SLIP_GITD_UPSTREAM_H
#define SLIP_GITD_UPSTREAM_H

#include <jansson.h>

#include "pipeline.h"

/* What the worker needs (borrowed). */
struct upstream_opts {
	const char *data_dir;                 /* the repositories, resolved */
	const struct pipeline_worker *worker; /* for pipeline_serve and the API */
	unsigned long long max_pack_bytes;    /* a fetched pack's largest size; 0: no limit */
	unsigned long long max_object_bytes;  /* the largest object (or delta
	                                         result) in it; 0: no limit */
};

/* Serves one webhook request, MSG the "webhook" object the listener sent
 * ({namespace, name, headers, body (base64)}): answers on FD one JSON line
 * {"status": HTTP CODE, "reason": REASON, "message": TEXT} (REASON is
 * accepted, ping, ignored, bad_request, unknown_remote, bad_signature,
 * replayed_delivery, non_deploying_branch or error), closes FD, then, for
 * an accepted push, fetches and runs the pipeline. Every refusal is logged
 * as webhook_refused with its reason; no body or secret is logged. */
void upstream_serve_webhook(const json_t *msg, int fd, const struct upstream_opts *o);

/* Polls the upstream of Remote NS/NAME once: lists its refs and deploys the
 * followed branches whose value differs from the repository's. Logs what it
 * did (upstream_poll, upstream_failed). */
void upstream_poll(const char *ns, const char *name, const struct upstream_opts *o);

#endif
