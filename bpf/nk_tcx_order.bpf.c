// SPDX-License-Identifier: GPL-2.0
/* Three tcx/netkit programs that record the order in which they run, so a
 * test can check that bpf_mprog's list order (as queried) is the order
 * that traffic actually takes.
 */
#include "nk_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u32);
} order SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} pos SEC(".maps");

static __always_inline int record(struct __sk_buff *skb, __u32 id)
{
	__u32 zero = 0, *p, slot;

	if (!nk_is_probe(skb, ETH_HLEN))
		return TCX_NEXT;
	p = bpf_map_lookup_elem(&pos, &zero);
	if (!p)
		return TCX_NEXT;
	slot = __sync_fetch_and_add(p, 1);
	if (slot < 16)
		bpf_map_update_elem(&order, &slot, &id, BPF_ANY);
	return TCX_NEXT;
}

SEC("tc")
int nk_order_1(struct __sk_buff *skb)
{
	return record(skb, 1);
}

SEC("tc")
int nk_order_2(struct __sk_buff *skb)
{
	return record(skb, 2);
}

SEC("tc")
int nk_order_3(struct __sk_buff *skb)
{
	return record(skb, 3);
}

char LICENSE[] SEC("license") = "GPL";
