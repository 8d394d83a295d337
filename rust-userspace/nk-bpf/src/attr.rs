//! Every `bpf_attr` nk-bpf sends is built here, one function per command,
//! as aya's `sys/bpf.rs` does. Each starts from the zeroed union and writes
//! its member's fields in place, never a struct or union literal: a literal
//! would copy its padding, and the bytes of the union's larger members,
//! from the stack, and the kernel refuses non-zero unused bytes with
//! EINVAL. A tidy test (`tidy::bpf_attr_is_built_in_attr_rs`) keeps it the
//! only place.
//!
//! Pointers are stored as the `u64` addresses the uapi holds; what they
//! must point at is the `# Safety` contract of the `sys::bpf` call that
//! sends the attr.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};

use nk_sys::uapi;

use crate::mprog::{encode, Anchor, AttachPoint};

fn zeroed() -> uapi::bpf_attr {
    uapi::bpf_attr::default()
}

fn raw(fd: BorrowedFd<'_>) -> u32 {
    fd.as_raw_fd() as u32
}

/// `BPF_OBJ_GET_INFO_BY_FD`: `len` bytes at `info`.
pub(crate) fn obj_get_info(fd: BorrowedFd<'_>, info: u64, len: u32) -> uapi::bpf_attr {
    let mut a = zeroed();
    a.info.bpf_fd = raw(fd);
    a.info.info_len = len;
    a.info.info = info;
    a
}

/// `BPF_PROG_GET_FD_BY_ID`.
pub(crate) fn prog_get_fd_by_id(id: u32) -> uapi::bpf_attr {
    let mut a = zeroed();
    a.__bindgen_anon_6.__bindgen_anon_1.prog_id = id;
    a
}

/// `BPF_LINK_DETACH`.
pub(crate) fn link_detach(link: BorrowedFd<'_>) -> uapi::bpf_attr {
    let mut a = zeroed();
    a.link_detach.link_fd = raw(link);
    a
}

/// `BPF_LINK_UPDATE`; with `old`, `BPF_F_REPLACE`.
pub(crate) fn link_update(
    link: BorrowedFd<'_>,
    new: BorrowedFd<'_>,
    old: Option<BorrowedFd<'_>>,
) -> uapi::bpf_attr {
    let mut a = zeroed();
    a.link_update.link_fd = raw(link);
    a.link_update.__bindgen_anon_1.new_prog_fd = raw(new);
    if let Some(old) = old {
        a.link_update.flags = uapi::BPF_F_REPLACE;
        a.link_update.__bindgen_anon_2.old_prog_fd = raw(old);
    }
    a
}

/// `BPF_MAP_LOOKUP_ELEM` and `BPF_MAP_UPDATE_ELEM`.
pub(crate) fn map_elem(map: BorrowedFd<'_>, key: u64, value: u64, flags: u64) -> uapi::bpf_attr {
    let mut a = zeroed();
    a.__bindgen_anon_2.map_fd = raw(map);
    a.__bindgen_anon_2.key = key;
    a.__bindgen_anon_2.__bindgen_anon_1.value = value;
    a.__bindgen_anon_2.flags = flags;
    a
}

/// `BPF_MAP_LOOKUP_BATCH`.
pub(crate) fn map_batch(
    map: BorrowedFd<'_>,
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
) -> uapi::bpf_attr {
    let mut a = zeroed();
    a.batch.in_batch = in_batch;
    a.batch.out_batch = out_batch;
    a.batch.keys = keys;
    a.batch.values = values;
    a.batch.count = count;
    a.batch.map_fd = raw(map);
    a
}

/// `BPF_OBJ_PIN` (with `bpf_fd`) and `BPF_OBJ_GET` (`bpf_fd` 0).
pub(crate) fn obj(path: &CStr, bpf_fd: u32) -> uapi::bpf_attr {
    let mut a = zeroed();
    a.__bindgen_anon_4.pathname = path.as_ptr() as u64;
    a.__bindgen_anon_4.bpf_fd = bpf_fd;
    a
}

/// `BPF_LINK_CREATE` for tcx and netkit.
pub(crate) fn link_create(
    prog: BorrowedFd<'_>,
    at: AttachPoint,
    anchor: Anchor<'_>,
    expected_revision: Option<u64>,
) -> uapi::bpf_attr {
    let (flags, relative) = encode(anchor);
    let revision = expected_revision.unwrap_or(0);
    let mut a = zeroed();
    // tcx and netkit have 4 bytes of padding between relative_fd and expected_revision, left zero.
    a.link_create.__bindgen_anon_1.prog_fd = raw(prog);
    a.link_create.__bindgen_anon_2.target_ifindex = at.ifindex();
    a.link_create.attach_type = at.attach_type();
    a.link_create.flags = flags;
    match at {
        AttachPoint::Tcx { .. } => {
            a.link_create
                .__bindgen_anon_3
                .tcx
                .__bindgen_anon_1
                .relative_fd = relative;
            a.link_create.__bindgen_anon_3.tcx.expected_revision = revision;
        }
        AttachPoint::Netkit { .. } => {
            a.link_create
                .__bindgen_anon_3
                .netkit
                .__bindgen_anon_1
                .relative_fd = relative;
            a.link_create.__bindgen_anon_3.netkit.expected_revision = revision;
        }
    }
    a
}

/// `BPF_LINK_CREATE` for an iterator, fentry or fexit program: the
/// program and its attach type alone.
pub(crate) fn link_create_prog(prog: BorrowedFd<'_>, attach_type: u32) -> uapi::bpf_attr {
    let mut a = zeroed();
    a.link_create.__bindgen_anon_1.prog_fd = raw(prog);
    a.link_create.attach_type = attach_type;
    a
}

/// `BPF_PROG_ATTACH` and `BPF_PROG_DETACH`.
pub(crate) fn prog_attach(
    prog: BorrowedFd<'_>,
    at: AttachPoint,
    anchor: Anchor<'_>,
    replace: Option<BorrowedFd<'_>>,
    expected_revision: Option<u64>,
) -> uapi::bpf_attr {
    let (mut flags, relative) = encode(anchor);
    if replace.is_some() {
        flags |= uapi::BPF_F_REPLACE;
    }
    let mut a = zeroed();
    a.__bindgen_anon_5.__bindgen_anon_1.target_ifindex = at.ifindex();
    a.__bindgen_anon_5.attach_bpf_fd = raw(prog);
    a.__bindgen_anon_5.attach_type = at.attach_type();
    a.__bindgen_anon_5.attach_flags = flags;
    a.__bindgen_anon_5.replace_bpf_fd = replace.map_or(0, raw);
    a.__bindgen_anon_5.__bindgen_anon_2.relative_fd = relative;
    a.__bindgen_anon_5.expected_revision = expected_revision.unwrap_or(0);
    a
}

/// `BPF_PROG_QUERY`: up to `count` ids into `progs` and `links` (0: none).
pub(crate) fn prog_query(at: AttachPoint, progs: u64, links: u64, count: u32) -> uapi::bpf_attr {
    let mut a = zeroed();
    a.query.__bindgen_anon_1.target_ifindex = at.ifindex();
    a.query.attach_type = at.attach_type();
    a.query.prog_ids = progs;
    a.query.__bindgen_anon_2.count = count;
    a.query.link_ids = links;
    a
}

/// `BPF_ITER_CREATE`.
pub(crate) fn iter_create(link: BorrowedFd<'_>) -> uapi::bpf_attr {
    let mut a = zeroed();
    a.iter_create.link_fd = raw(link);
    a
}

/// `BPF_PROG_TEST_RUN`: `(address, size)` of the packet in and out and
/// of the context (0, 0: none).
pub(crate) fn prog_test_run(
    prog: BorrowedFd<'_>,
    data_in: (u64, u32),
    data_out: (u64, u32),
    ctx_in: (u64, u32),
) -> uapi::bpf_attr {
    let mut a = zeroed();
    // The test member has tail padding, left zero as the kernel requires.
    a.test.prog_fd = raw(prog);
    (a.test.data_in, a.test.data_size_in) = data_in;
    (a.test.data_out, a.test.data_size_out) = data_out;
    (a.test.ctx_in, a.test.ctx_size_in) = ctx_in;
    a
}
