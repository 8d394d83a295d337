// SPDX-License-Identifier: GPL-2.0
/* Counts pskb_expand_head() calls that grow the headroom: the
 * reallocations an encapsulation (vxlan) makes when a packet arrives with
 * less headroom than it needs. Used by the vxlan-over-netkit benchmark.
 */
#include "nk_common.h"
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

enum { NK_EXPANDS, NK_HEAD_EXPANDS };

static __always_inline void nk_inc(__u32 key)
{
	__u64 *n = bpf_map_lookup_elem(&counts, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("fentry/pskb_expand_head")
int BPF_PROG(nk_count_expand, struct sk_buff *skb, int nhead, int ntail,
	     gfp_t gfp_mask)
{
	nk_inc(NK_EXPANDS);
	if (nhead > 0)
		nk_inc(NK_HEAD_EXPANDS);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
