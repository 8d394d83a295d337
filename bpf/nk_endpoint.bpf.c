// SPDX-License-Identifier: GPL-2.0
/* The endpoint program nkctl attaches for traffic leaving a Pod: on the
 * netkit peer list, or at tcx ingress of the host-side veth. It counts
 * packets and bytes and lets them continue.
 */
#include "nk_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} from_pod SEC(".maps");

SEC("tc")
int nk_endpoint_from_pod(struct __sk_buff *skb)
{
	__u32 pkts = 0, bytes = 1;
	__u64 *v;

	v = bpf_map_lookup_elem(&from_pod, &pkts);
	if (v)
		__sync_fetch_and_add(v, 1);
	v = bpf_map_lookup_elem(&from_pod, &bytes);
	if (v)
		__sync_fetch_and_add(v, skb->len);
	return TCX_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
