// SPDX-License-Identifier: GPL-2.0
/* A datapath in miniature, the way Cilium forwards in netkit mode:
 *
 *  - nk_from_pod_netkit (netkit peer list) and nk_from_pod_veth (tcx
 *    ingress of a host-side veth) see what a Pod sends. To a Pod on this
 *    node: into that Pod, bpf_redirect_peer() where the hook allows it (tc
 *    ingress) and bpf_redirect() to the Pod's host-side device otherwise.
 *    Anywhere else: bpf_redirect_neigh() out of the "physical" device.
 *  - nk_from_phys (tcx ingress of the physical device): to a Pod on this
 *    node, bpf_redirect_peer() straight into it.
 *
 * The endpoint map is pinned by name, so that every object loaded for
 * the node (one per endpoint, by nkctl) shares it. Destination MACs are
 * rewritten to the Pod's own (all zero for netkit L3), so that the Pod's
 * device takes the frame as PACKET_HOST.
 */
#include "nk_common.h"

struct nk_ep {
	__u32 ifindex;		/* host-side device of the Pod */
	__u8 mac[6];		/* the Pod device's MAC; zero for netkit L3 */
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);	/* IPv4 address, network order */
	__type(value, struct nk_ep);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nk_e2e_eps SEC(".maps");

/* [0] physical ifindex; [1] peer redirects; [2] redirects; [3] neigh. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nk_e2e_cfg SEC(".maps");

enum { NK_PHYS, NK_PEER, NK_REDIR, NK_NEIGH };

static __always_inline void nk_count(__u32 key)
{
	__u64 *n = bpf_map_lookup_elem(&nk_e2e_cfg, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* The endpoint for the packet's IPv4 destination, or NULL. */
static __always_inline struct nk_ep *nk_lookup(struct __sk_buff *skb)
{
	__u32 daddr;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return NULL;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, daddr),
			       &daddr, sizeof(daddr)))
		return NULL;
	return bpf_map_lookup_elem(&nk_e2e_eps, &daddr);
}

static __always_inline int nk_to_pod(struct __sk_buff *skb,
				     struct nk_ep *ep, bool peer)
{
	__u32 ifindex = ep->ifindex;

	if (bpf_skb_store_bytes(skb, 0, ep->mac, 6, 0))
		return TCX_DROP;
	if (peer) {
		nk_count(NK_PEER);
		return bpf_redirect_peer(ifindex, 0);
	}
	nk_count(NK_REDIR);
	return bpf_redirect(ifindex, 0);
}

static __always_inline int nk_to_world(struct __sk_buff *skb)
{
	__u32 key = NK_PHYS;
	__u64 *phys = bpf_map_lookup_elem(&nk_e2e_cfg, &key);

	if (!phys || !*phys || skb->protocol != bpf_htons(ETH_P_IP))
		return TCX_NEXT;
	nk_count(NK_NEIGH);
	return bpf_redirect_neigh(*phys, NULL, 0, 0);
}

SEC("netkit/peer")
int nk_from_pod_netkit(struct __sk_buff *skb)
{
	struct nk_ep *ep = nk_lookup(skb);

	/* Not at tc ingress: bpf_redirect_peer() is not allowed here. */
	return ep ? nk_to_pod(skb, ep, false) : nk_to_world(skb);
}

SEC("tcx/ingress")
int nk_from_pod_veth(struct __sk_buff *skb)
{
	struct nk_ep *ep = nk_lookup(skb);

	return ep ? nk_to_pod(skb, ep, true) : nk_to_world(skb);
}

SEC("tcx/ingress")
int nk_from_phys(struct __sk_buff *skb)
{
	struct nk_ep *ep = nk_lookup(skb);

	return ep ? nk_to_pod(skb, ep, true) : TCX_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
