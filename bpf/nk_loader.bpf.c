// SPDX-License-Identifier: GPL-2.0
/* For nk-bpf's staged loader (nk.bpf_loader): a .rodata constant and a
 * .bss variable set before load, a map an agent hands in, and a program
 * the verifier refuses, loaded only when its autoload is on.
 */
#include "nk_common.h"

/* Set by OpenObject::set_global(); the verifier sees the value. */
const volatile __u32 nk_cfg_mult = 1;
/* Set the same way, in .bss: state a restarted agent carries over. */
__u64 nk_cfg_base;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nk_shared SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nk_hash SEC(".maps");

/* Writes nk_cfg_base + 7 * nk_cfg_mult into nk_shared[0] and returns the
 * multiplier.
 */
SEC("syscall")
int nk_loader_store(void *ctx)
{
	__u32 key = 0;
	__u64 v = nk_cfg_base + 7 * (__u64)nk_cfg_mult;

	bpf_map_update_elem(&nk_shared, &key, &v, BPF_ANY);
	return nk_cfg_mult;
}

/* Refused: reads a hash map value without checking the lookup for NULL
 * (an array lookup with a constant key in range cannot fail, and the
 * verifier knows it).
 */
SEC("syscall")
int nk_loader_refused(void *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&nk_hash, &key);

	return *v;
}

char LICENSE[] SEC("license") = "GPL";
