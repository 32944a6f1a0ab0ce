/* upload_pack: the server side of git clone and fetch (see upload_pack.h). */
#include "err.h"
#include "upload_pack.h"
#include "banned.h"

int upload_pack_protocol_version(const char *value)
{
	return 0;
}

int upload_pack_serve(struct pkt_io *io, git_repository *repo, int version,
                      const struct upload_opts *opts, struct upload_stats *stats)
{
	return err_set("upload-pack is not implemented yet");
}
