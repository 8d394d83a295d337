// SPDX-License-Identifier: GPL-2.0
/* netkit must respect a pkt_type that its BPF program sets (upstream
 * 3998d184267d "netkit: Fix pkt_type override upon netkit pass verdict").
 * The primary's program marks probes as PACKET_MULTICAST and rewrites the
 * destination MAC; the peer's tcx ingress program checks that the mark
 * survived (it would not if netkit re-derived pkt_type from the MAC after
 * the program ran) and turns it back into PACKET_HOST so the probe is
 * delivered.
 */
#include "nk_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} seen SEC(".maps");

enum { SEEN_PRIMARY, SEEN_HOST, SEEN_PEER, SEEN_MCAST };

static __always_inline void mark(__u32 what)
{
	__u32 one = 1;

	bpf_map_update_elem(&seen, &what, &one, BPF_ANY);
}

SEC("netkit/primary")
int nk_mark_mcast(struct __sk_buff *skb)
{
	struct ethhdr eth;

	if (!nk_is_probe(skb, ETH_HLEN))
		return TCX_NEXT;
	mark(SEEN_PRIMARY);
	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)))
		return TCX_NEXT;
	if (skb->pkt_type == PACKET_HOST) {
		mark(SEEN_HOST);
		eth.h_dest[0] = 4;
		if (bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0))
			return TCX_DROP;
		bpf_skb_change_type(skb, PACKET_MULTICAST);
	}
	return TCX_NEXT;
}

SEC("tcx/ingress")
int nk_check_mcast(struct __sk_buff *skb)
{
	struct ethhdr eth;

	if (!nk_is_probe(skb, ETH_HLEN))
		return TCX_NEXT;
	mark(SEEN_PEER);
	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)))
		return TCX_NEXT;
	if (eth.h_dest[0] == 4 && skb->pkt_type == PACKET_MULTICAST) {
		mark(SEEN_MCAST);
		bpf_skb_change_type(skb, PACKET_HOST);
	}
	return TCX_PASS;
}

char LICENSE[] SEC("license") = "GPL";
