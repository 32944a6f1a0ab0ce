/* dashboard: `kubectl slipway dashboard`, a read-only status page of Remotes
 * and PipelineRuns served on loopback. It reads the API with the user's own
 * kubeconfig (kubectl proxy's model): one watch per resource, relayed to the
 * browser as Server-Sent Events; the page's files are embedded in the binary.
 * See docs/dashboard.md. */
#ifndef SLIP_PLUGIN_DASHBOARD_H
#define SLIP_PLUGIN_DASHBOARD_H

#include <signal.h>
#include <stdbool.h>

#include "kube.h"

/* What dashboard_run serves. */
struct dashboard_opts {
	struct kube_config *cfgs[3];       /* one loaded configuration per watch
	                                      (PipelineRuns, Remotes, gitkube
	                                      Remotes); their contents move into the
	                                      watches' clients */
	const char *ns;                    /* namespace, or NULL for all namespaces */
	const char *address;               /* IPv4 or IPv6 literal to listen on */
	int port;                          /* TCP port; 0 lets the kernel choose */
	bool open_browser;                 /* run xdg-open on the URL */
	const volatile sig_atomic_t *stop; /* serve until this becomes non-zero */
};

/* Serves the page until *o->stop becomes non-zero, then closes the event
 * streams, stops the server and the watches, and returns 0. Prints the
 * page's URL on stdout once it listens, and each watch's failures (forbidden,
 * resource not installed) on stderr as they happen. Returns -1 with err_msg()
 * when the address is not an IP literal or the port cannot be bound. The
 * configurations in o->cfgs are emptied (as by kube_config_release) whatever
 * the outcome. */
int dashboard_run(const struct dashboard_opts *o);

/* Whether HOST (a request's Host header, NULL when absent) names the server
 * listening on ADDRESS (an IP literal, as given to dashboard_run) and PORT:
 * "ADDRESS:PORT" ("[ADDRESS]:PORT" for IPv6), or "localhost:PORT" when
 * ADDRESS is a loopback address. Any other name could be a DNS name an
 * attacker points at the loopback address (DNS rebinding), so it is refused. */
bool dashboard_host_is_allowed(const char *host, const char *address, int port);

#endif
