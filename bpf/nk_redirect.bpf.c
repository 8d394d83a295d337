// SPDX-License-Identifier: GPL-2.0
/* tcx ingress on a host-side veth: bpf_redirect_peer() probes into the
 * netkit peer whose primary's ifindex is in cfg[0], as Cilium does for
 * traffic entering a Pod. nk_sink, on the peer's tcx ingress, counts and
 * drops what arrives, so that a benchmark measures the redirect path and
 * not socket delivery.
 */
#include "nk_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u32);
} cfg SEC(".maps");

enum { CFG_IFINDEX, CFG_REDIRECTS, CFG_SINK };

SEC("tcx/ingress")
int nk_redirect_peer(struct __sk_buff *skb)
{
	__u32 key = CFG_IFINDEX, *ifindex, *n;

	if (!nk_is_probe(skb, ETH_HLEN))
		return TCX_NEXT;
	ifindex = bpf_map_lookup_elem(&cfg, &key);
	if (!ifindex || !*ifindex)
		return TCX_NEXT;
	key = CFG_REDIRECTS;
	n = bpf_map_lookup_elem(&cfg, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	return bpf_redirect_peer(*ifindex, 0);
}

SEC("tcx/ingress")
int nk_sink(struct __sk_buff *skb)
{
	__u32 key = CFG_SINK, *n;

	if (!nk_is_probe(skb, ETH_HLEN))
		return TCX_NEXT;
	n = bpf_map_lookup_elem(&cfg, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	return TCX_DROP;
}

char LICENSE[] SEC("license") = "GPL";
