/* libFuzzer target: kubeconfig YAML (with base64 *-data fields and name
 * lookups) must load or fail cleanly. Relative file paths are resolved under
 * a directory that does not exist, so no file is read. */
#include <stddef.h>
#include <stdint.h>

#include "kubeconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_config c;

	kube_config_init(&c);
	kube_config_load_yaml(&c, (const char *)data, size, "/nonexistent-slipway-fuzz", NULL);
	kube_config_release(&c);
	return 0;
}
