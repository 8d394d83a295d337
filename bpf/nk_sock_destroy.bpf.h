/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between bpf/nk_sock_destroy.bpf.c and nkctl (sock destroy):
 * the argument block passed with BPF_PROG_RUN and the map records.
 * nkctl mirrors these layouts in rust-userspace/nkctl/src/sock.rs; a unit
 * test there checks the sizes and offsets against this file.
 */
#ifndef NK_SOCK_DESTROY_BPF_H
#define NK_SOCK_DESTROY_BPF_H

#define NK_SD_TCP	1
#define NK_SD_UDP	2

/* BPF_PROG_RUN context (ctx_in). */
struct nk_sd_args {
	__u32 daddr[4];		/* backend address, network order */
	__u16 dport;		/* backend port, host order */
	__u8 family;		/* AF_INET or AF_INET6 */
	__u8 protos;		/* NK_SD_TCP | NK_SD_UDP */
	__u8 dry_run;
	__u8 pad[3];
	__u32 netns_ino;	/* only this netns (nsfs inode); 0: all */
};

/* One matching socket (nk_sd_found[i]). */
struct nk_sd_sock {
	__u64 netns_cookie;
	__u64 sk_cookie;
	__u32 netns_ino;
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;		/* host order */
	__u16 dport;		/* host order */
	__u8 proto;		/* NK_SD_TCP or NK_SD_UDP */
	__u8 family;
	__u8 state;
	__u8 err;		/* errno of a failed destroy; 0: destroyed */
};

/* nk_sd_stats[0]. Every run starts from zero, so a pinned program can be
 * run again and again: the per-netns counts come from nk_sd_found.
 */
struct nk_sd_stats {
	__u32 netns;		/* netns walked */
	__u32 socks;		/* sockets looked at */
	__u32 found;		/* matches (entries in nk_sd_found, capped) */
	__u32 destroyed;
	__s32 iter_err;		/* -errno that stopped a walk early, or 0 */
};

#define NK_SD_MAX_FOUND	65536

#endif
