/* receive_pack: the server side of git push (see receive_pack.h). */
#include "err.h"
#include "receive_pack.h"
#include "banned.h"

int receive_pack_serve(struct pkt_io *io, git_repository *repo, const struct receive_opts *opts,
                       struct receive_stats *stats)
{
	return err_set("receive-pack is not implemented yet");
}
