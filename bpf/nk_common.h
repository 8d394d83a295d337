/* SPDX-License-Identifier: GPL-2.0 */
/* Shared definitions for nkdev's BPF programs (vmlinux.h has no macros). */
#ifndef NK_COMMON_H
#define NK_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP	0x0800
#define ETH_HLEN	14
#define PACKET_HOST	0
#define PACKET_MULTICAST 2
#define IPPROTO_UDP_NK	17

/* UDP port the selftests send their probes to; programs ignore the rest. */
#define NK_PROBE_PORT	4242

/* Returns true for an IPv4 UDP packet to NK_PROBE_PORT; @off is where the
 * IP header starts (ETH_HLEN at tcx/netkit, which see the MAC header).
 */
static __always_inline bool nk_is_probe(struct __sk_buff *skb, __u32 off)
{
	struct iphdr ip;
	struct udphdr udp;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return false;
	if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)))
		return false;
	if (ip.protocol != IPPROTO_UDP_NK || ip.ihl != 5)
		return false;
	if (bpf_skb_load_bytes(skb, off + sizeof(ip), &udp, sizeof(udp)))
		return false;
	return udp.dest == bpf_htons(NK_PROBE_PORT);
}

#endif
