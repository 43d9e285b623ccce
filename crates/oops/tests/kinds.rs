//! One test per crash kind and quirk, on snippets in the exact format kernels print.

use repro_oops::{kind_name, parse, CrashKind, Detector, Frame, Report};

fn one(log: &str) -> Report {
    let mut reports = parse(log.as_bytes());
    assert_eq!(
        reports.len(),
        1,
        "{:#?}",
        reports.iter().map(|r| &r.title).collect::<Vec<_>>()
    );
    reports.remove(0)
}

fn titles(log: &str) -> Vec<String> {
    parse(log.as_bytes()).into_iter().map(|r| r.title).collect()
}

#[test]
fn null_deref_x86_6x_helper_rip_uses_trace() {
    let r = one("\
[   16.207513] BUG: kernel NULL pointer dereference, address: 00000000000000a4
[   16.208424] #PF: supervisor write access in kernel mode
[   16.209968] Oops: 0002 [#1] PREEMPT SMP NOPTI
[   16.210484] CPU: 0 PID: 231 Comm: nfs_wr Tainted: G        W          6.1.0-56-cloud-amd64 #1 Debian 6.1.192-2
[   16.212406] RIP: 0010:_raw_spin_lock+0x11/0x30
[   16.215283] RSP: 0018:ffffa7e4c03bfcc0 EFLAGS: 00010202
[   16.223206] Call Trace:
[   16.223531]  <TASK>
[   16.225802]  ? _raw_spin_lock+0x11/0x30
[   16.226314]  nfs_inode_add_request+0x5a/0x1e0 [nfs]
[   16.226314]  nfs_updatepage.isra.0+0x2b5/0x960 [nfs]
[   16.229958]  entry_SYSCALL_64_after_hwframe+0x64/0xce
[   16.238788]  </TASK>
[   16.240544] ---[ end trace 0000000000000000 ]---
");
    assert_eq!(r.title, "BUG: kernel NULL pointer dereference in nfs_inode_add_request");
    assert_eq!(r.kind, CrashKind::NullDeref);
    assert_eq!(r.faulting_function.as_deref(), Some("_raw_spin_lock"));
    assert_eq!((r.comm.as_deref(), r.pid), (Some("nfs_wr"), Some(231)));
    assert_eq!(r.cpu, Some(0));
    assert_eq!(r.taint.as_deref(), Some("G        W"));
    assert_eq!(r.release.as_deref(), Some("6.1.0-56-cloud-amd64"));
    assert_eq!(r.frames.len(), 4);
    assert_eq!(
        r.frames[0],
        Frame {
            function: "_raw_spin_lock".into(),
            offset: Some(0x11),
            size: Some(0x30),
            module: None,
            reliable: false,
            source: Vec::new(),
        }
    );
    assert_eq!(r.frames[2].function, "nfs_updatepage.isra.0");
    assert_eq!(r.frames[2].module.as_deref(), Some("nfs"));
    assert!(!r.corrupted);
    assert!(
        r.text.starts_with("BUG: kernel NULL pointer dereference")
            && r.text.ends_with("---[ end trace 0000000000000000 ]---")
    );
}

#[test]
fn null_deref_x86_4_9_bracketed_addresses() {
    let r = one("\
[  101.882210] BUG: unable to handle kernel NULL pointer dereference at           (null)
[  101.883110] IP: [<ffffffff813bd6e3>] _raw_spin_lock+0x13/0x30
[  101.884000] PGD 0 
[  101.884200] Oops: 0002 [#1] SMP
[  101.885010] CPU: 1 PID: 1587 Comm: dd Not tainted 4.9.0-8-amd64 #1 Debian 4.9.144-3.1
[  101.886500] RIP: 0010:[<ffffffff813bd6e3>]  [<ffffffff813bd6e3>] _raw_spin_lock+0x13/0x30
[  101.887000] RSP: 0018:ffffb0e7c0b8fc90  EFLAGS: 00010246
[  101.888135] Call Trace:
[  101.888502]  [<ffffffffc04a1c65>] ? nfs_lock_and_join_requests+0x45/0x190 [nfs]
[  101.889141]  [<ffffffffc04a3a13>] nfs_inode_add_request+0x53/0x80 [nfs]
[  101.889810]  [<ffffffffc04a4e51>] nfs_updatepage+0x1b1/0x8c0 [nfs]
[  101.890384] Code: 00 00 00 00 66 0f 1f 44 00 00 31 c0 ba 01 00 00 00 f0 0f b1 17 <85> c0 75 01 c3 89 c6 e9 
[  101.890928] RIP  [<ffffffff813bd6e3>] _raw_spin_lock+0x13/0x30
[  101.891495]  RSP <ffffb0e7c0b8fc90>
[  101.892048] CR2: 0000000000000000
[  101.892547] ---[ end trace 3f8f6b1e3a2d5c1f ]---
");
    assert_eq!(
        r.title,
        "BUG: unable to handle kernel NULL pointer dereference in nfs_inode_add_request"
    );
    assert_eq!(r.faulting_function.as_deref(), Some("_raw_spin_lock"));
    assert!(!r.frames[0].reliable && r.frames[1].reliable);
    assert_eq!(r.release.as_deref(), Some("4.9.0-8-amd64"));
    assert_eq!(r.cpu, Some(1));
}

#[test]
fn paging_request_x86_4x() {
    let r = one("\
BUG: unable to handle kernel paging request at ffffc90000e8a000
PGD 7d837067 P4D 7d837067 PUD 7d838067 PMD 7b33a067 PTE 0
Oops: 0000 [#1] SMP PTI
CPU: 0 PID: 4406 Comm: xfs_io Not tainted 4.19.0-16-amd64 #1 Debian 4.19.181-1
RIP: 0010:xfs_dir2_leaf_getdents+0x2b1/0x7c0 [xfs]
Call Trace:
 xfs_readdir+0x111/0x180 [xfs]
 iterate_dir+0x95/0x1b0
Modules linked in: xfs
CR2: ffffc90000e8a000
---[ end trace 4d1c5ea52fd0b7a5 ]---
");
    assert_eq!(
        r.title,
        "BUG: unable to handle kernel paging request in xfs_dir2_leaf_getdents"
    );
    assert_eq!(r.kind, CrashKind::PagingFault);
}

#[test]
fn general_protection_fault_4x() {
    let r = one("\
[  200.100000] general protection fault: 0000 [#1] SMP PTI
[  200.100100] CPU: 2 PID: 77 Comm: kworker/2:1 Not tainted 4.19.90 #1
[  200.100200] RIP: 0010:memcpy_erms+0x6/0x10
[  200.100300] Call Trace:
[  200.100400]  nfsd4_encode_fattr+0x3a1/0x1a00 [nfsd]
[  200.100500]  nfsd4_encode_getattr+0x2c/0x40 [nfsd]
[  200.100600] ---[ end trace 0c1f0d8e2f9b6a41 ]---
");
    assert_eq!(r.title, "general protection fault in nfsd4_encode_fattr");
    assert_eq!(r.kind, CrashKind::GeneralProtection);
}

#[test]
fn arm64_paging_request_and_useless_pc() {
    let r = one("\
[   88.100000] Unable to handle kernel paging request at virtual address dead000000000108
[   88.100100] Internal error: Oops: 0000000096000044 [#1] SMP
[   88.100200] CPU: 1 PID: 31 Comm: kworker/1:1 Not tainted 6.1.0-56-arm64 #1  Debian 6.1.192-2
[   88.100300] pc : nfs_inode_remove_request+0x88/0x160 [nfs]
[   88.100400] lr : nfs_inode_remove_request+0x5c/0x160 [nfs]
[   88.100500] Call trace:
[   88.100600]  nfs_inode_remove_request+0x88/0x160 [nfs]
[   88.100700]  nfs_commit_release_pages+0xd4/0x290 [nfs]
[   88.100800] Code: f9400a61 f9000422 f9000041 d2802441 (f9000461) 
[   88.100900] ---[ end trace 0000000000000000 ]---
");
    assert_eq!(
        r.title,
        "Unable to handle kernel paging request in nfs_inode_remove_request"
    );
    assert_eq!(r.kind, CrashKind::PagingFault);

    // A call through a NULL pointer: pc is 0, so the caller in lr names the crash.
    let r = one("\
Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000
Internal error: Oops: 0000000086000006 [#1] SMP
CPU: 0 PID: 977 Comm: statwalk Not tainted 6.1.0-56-arm64 #1  Debian 6.1.192-2
pc : 0x0
lr : step_into+0x3a0/0x6e0
sp : ffff80000b6fbaf0
Call trace:
 0x0
 path_lookupat+0x84/0x1e0
Code: bad PC value
---[ end trace 0000000000000000 ]---
");
    assert_eq!(r.title, "Unable to handle kernel NULL pointer dereference in step_into");
    assert_eq!(r.faulting_function.as_deref(), Some("step_into"));
}

#[test]
fn arm64_internal_error_alone() {
    let r = one("\
[   12.000000] Internal error: Oops - Undefined instruction: 0000000002000000 [#1] SMP
[   12.000100] Modules linked in:
[   12.000200] CPU: 0 PID: 1 Comm: init Not tainted 6.1.0-56-arm64 #1  Debian 6.1.192-2
[   12.000300] pc : xfs_attr_get+0x10/0xa0 [xfs]
[   12.000400] lr : xfs_xattr_get+0x80/0xc4 [xfs]
[   12.000500] Call trace:
[   12.000600]  xfs_attr_get+0x10/0xa0 [xfs]
[   12.000700] ---[ end trace 0000000000000000 ]---
");
    assert_eq!(r.title, "Internal error in xfs_attr_get");
    assert_eq!(r.kind, CrashKind::Oops);

    // BUG() without CONFIG_DEBUG_BUGVERBOSE: no `kernel BUG at` line before it.
    let r = one("\
Internal error: Oops - BUG: 00000000f2000800 [#1] SMP
CPU: 0 PID: 977 Comm: statwalk Not tainted 6.1.0-56-arm64 #1  Debian 6.1.192-2
pc : xfs_iget_cache_hit+0x3a4/0x3b0 [xfs]
lr : xfs_iget_cache_hit+0x1c8/0x3b0 [xfs]
Call trace:
 xfs_iget_cache_hit+0x3a4/0x3b0 [xfs]
 xfs_iget+0x21c/0x2f0 [xfs]
---[ end trace 0000000000000000 ]---
Kernel panic - not syncing: Oops - BUG: Fatal exception
");
    assert_eq!(r.title, "Internal error in xfs_iget_cache_hit");
    assert_eq!(r.kind, CrashKind::Bug);
    assert!(r.text.ends_with("Oops - BUG: Fatal exception"));
}

#[test]
fn bug_on_x86_6x() {
    let r = one("\
[  141.003312] ------------[ cut here ]------------
[  141.004184] kernel BUG at fs/xfs/xfs_icache.c:412!
[  141.005052] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[  141.007258] CPU: 0 PID: 977 Comm: statwalk Not tainted 6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2
[  141.010815] RIP: 0010:xfs_iget_cache_hit.cold+0x26/0x28 [xfs]
[  141.026761] Call Trace:
[  141.026761]  <TASK>
[  141.027251]  xfs_iget+0x21c/0x2f0 [xfs]
[  141.027251]  </TASK>
[  141.041947] ---[ end trace 0000000000000000 ]---
");
    assert_eq!(r.title, "kernel BUG in xfs_iget_cache_hit");
    assert_eq!(r.kind, CrashKind::Bug);
    assert_eq!(r.faulting_function.as_deref(), Some("xfs_iget_cache_hit.cold"));
}

/// A refcount WARNING is named for the refcount check (syzbot's `WARNING: refcount bug in`), the
/// function for the first caller outside the refcount helpers.
#[test]
fn warning_in_generic_helper_uses_trace() {
    let r = one("\
------------[ cut here ]------------
refcount_t: underflow; use-after-free.
WARNING: CPU: 1 PID: 93 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110
Modules linked in:
CPU: 1 PID: 93 Comm: kworker/u4:3 Not tainted 6.1.192 #1
RIP: 0010:refcount_warn_saturate+0xba/0x110
Call Trace:
 <TASK>
 nfs4_put_stid+0x1a5/0x1c0 [nfsd]
 nfsd4_cb_recall_release+0x1c/0x30 [nfsd]
 </TASK>
---[ end trace 0000000000000000 ]---
");
    assert_eq!(r.title, "WARNING: refcount bug in nfs4_put_stid");
    assert_eq!(r.kind, CrashKind::Warning);
}

#[test]
fn warning_with_panic_on_warn_4x() {
    // 4.x panicked before printing registers: the panic's own stack dump follows.
    let r = one("\
WARNING: CPU: 0 PID: 55 at fs/iomap.c:1050 iomap_page_mkwrite_actor+0x5f/0x70
Kernel panic - not syncing: panic_on_warn set ...

CPU: 0 PID: 55 Comm: xfs_io Not tainted 4.19.90 #1
Call Trace:
 dump_stack+0x66/0x8b
 panic+0xe4/0x2a6
 __warn.cold+0x23/0x27
 iomap_page_mkwrite_actor+0x5f/0x70
 iomap_apply+0xe3/0x1b0
Kernel Offset: disabled
---[ end Kernel panic - not syncing: panic_on_warn set ... ]---
");
    assert_eq!(r.title, "WARNING in iomap_page_mkwrite_actor");
    assert!(!r.corrupted);
    assert!(r.text.ends_with("]---"));
}

#[test]
fn kasan_out_of_bounds_in_memcpy_and_double_free() {
    let r = one("\
==================================================================
BUG: KASAN: slab-out-of-bounds in memcpy+0x39/0x60
Write of size 16 at addr ffff888012b7c7f8 by task xfs_io/215

CPU: 0 PID: 215 Comm: xfs_io Not tainted 6.1.192 #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x5b/0x77
 print_report+0x17f/0x47b
 kasan_report+0xad/0x130
 kasan_check_range+0x115/0x1a0
 memcpy+0x39/0x60
 xfs_attr_shortform_add+0x1d2/0x380
 </TASK>
==================================================================
");
    assert_eq!(r.title, "KASAN: slab-out-of-bounds Write in xfs_attr_shortform_add");
    assert_eq!(r.kind, CrashKind::KasanOutOfBounds);

    let r = one("\
BUG: KASAN: double-free in nfs_free_request+0x22/0x90 [nfs]
Free of addr ffff888012b7c000 by task kworker/u4:3/93
CPU: 0 PID: 93 Comm: kworker/u4:3 Not tainted 6.1.192 #1
Call Trace:
 <TASK>
 nfs_free_request+0x22/0x90 [nfs]
 </TASK>
==================================================================
");
    // syzbot names every double or invalid free `invalid-free`.
    assert_eq!(r.title, "KASAN: invalid-free in nfs_free_request");
    assert_eq!(r.kind, CrashKind::Kasan);
}

#[test]
fn kfence_memory_corruption() {
    let r = one("\
==================================================================
BUG: KFENCE: memory corruption in nfs_free_request+0x90/0x120 [nfs]

Corrupted memory at 0x00000000c7f3a5e2 [ 0xac . . . ] (in kfence-#17):
 nfs_free_request+0x90/0x120 [nfs]
 nfs_release_request+0x6c/0x90 [nfs]

CPU: 0 PID: 93 Comm: kworker/u4:3 Not tainted 6.1.0-56-arm64 #1  Debian 6.1.192-2
==================================================================
");
    assert_eq!(r.title, "KFENCE: memory corruption in nfs_free_request");
    assert_eq!(r.kind, CrashKind::Kfence);
    assert_eq!(r.frames.len(), 2);
}

#[test]
fn ubsan_4x_wording() {
    let r = one("\
================================================================================
UBSAN: Undefined behaviour in fs/xfs/libxfs/xfs_bmap.c:4470:26
shift exponent 64 is too large for 64-bit type 'long unsigned int'
CPU: 0 PID: 1 Comm: mount Not tainted 4.19.90 #1
Call Trace:
 dump_stack+0x66/0x8b
 ubsan_epilogue+0x9/0x49
 __ubsan_handle_shift_out_of_bounds+0x10f/0x155
 xfs_bmapi_write+0x9c8/0xa40
================================================================================
");
    // syzbot's name for the family, whatever the kernel's wording.
    assert_eq!(r.title, "UBSAN: undefined-behaviour in xfs_bmapi_write");
    assert_eq!(r.kind, CrashKind::Ubsan);
}

#[test]
fn hung_task_comm_from_header() {
    let r = one("\
[  245.551922] INFO: task kworker/u4:2:61 blocked for more than 122 seconds.
[  245.552799]       Tainted: G        W          6.1.192 #1
[  245.554757] task:kworker/u4:2    state:D stack:0     pid:61    ppid:2      flags:0x00004000
[  245.555876] Call Trace:
[  245.556201]  <TASK>
[  245.556477]  __schedule+0x34d/0x9e0
[  245.556941]  schedule+0x5a/0xd0
[  245.556941]  rwsem_down_write_slowpath+0x2a1/0x560
[  245.556941]  down_write+0x5d/0x60
[  245.557363]  xfs_ilock+0x9e/0x1f0 [xfs]
[  245.572473]  </TASK>
[  245.573000] INFO: lockdep is turned off.
");
    assert_eq!(r.title, "INFO: task hung in xfs_ilock");
    assert_eq!((r.comm.as_deref(), r.pid), (Some("kworker/u4:2"), Some(61)));
    assert_eq!(
        (r.taint.as_deref(), r.release.as_deref()),
        (Some("G        W"), Some("6.1.192"))
    );
    assert!(!r.text.contains("lockdep"));
}

#[test]
fn rcu_stall_4x_with_starved_kthread_dump() {
    let r = one("\
INFO: rcu_sched self-detected stall on CPU
	0-...!: (20999 ticks this GP) idle=3be/1/0x4000000000000002 softirq=5111/5111 fqs=0 
	 (t=21000 jiffies g=2551 c=2550 q=45)
rcu_sched kthread starved for 21000 jiffies! g2551 c2550 f0x0 RCU_GP_WAIT_FQS(3) ->state=0x402 ->cpu=0
RCU grace-period kthread stack dump:
rcu_sched       I    0    10      2 0x80000000
Call Trace:
 __schedule+0x2a2/0x870
 schedule+0x28/0x80
 schedule_timeout+0x16b/0x390
 rcu_gp_kthread+0x40d/0x850
 kthread+0x112/0x130
 ret_from_fork+0x35/0x40
NMI backtrace for cpu 0
CPU: 0 PID: 1502 Comm: spin Not tainted 4.19.90 #1
Call Trace:
 <IRQ>
 dump_stack+0x66/0x8b
 nmi_cpu_backtrace.cold.4+0x13/0x51
 rcu_check_callbacks.cold.80+0x3b5/0x3db
 update_process_times+0x28/0x60
 smp_apic_timer_interrupt+0x6a/0x140
 apic_timer_interrupt+0xf/0x20
 </IRQ>
RIP: 0010:nfs_page_group_lock+0x2a/0x60 [nfs]
Code: 48 89 fb 48 8b 6f 38 eb 0c f3 90
RSP: 0018:ffffb0e7c0b8fc90 EFLAGS: 00000246 ORIG_RAX: ffffffffffffff13
 nfs_lock_and_join_requests+0x1c4/0x2c0 [nfs]
 nfs_updatepage+0x1b1/0x8c0 [nfs]
 ret_from_fork+0x35/0x40
sched: RT throttling activated
");
    assert_eq!(r.title, "INFO: rcu detected stall in nfs_page_group_lock");
    assert_eq!(r.kind, CrashKind::RcuStall);
    assert_eq!(r.comm.as_deref(), Some("spin"));
    assert_eq!(r.frames[0].function, "dump_stack");
    assert!(!r.text.contains("RT throttling"));
}

#[test]
fn soft_lockup_4x() {
    let r = one("\
[  155.421803] NMI watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [xfs_io:1203]
[  155.423765] CPU: 0 PID: 1203 Comm: xfs_io Tainted: G             L    4.19.90 #1
[  155.426159] RIP: 0010:_raw_spin_unlock_irqrestore+0x11/0x20
[  155.436878] Call Trace:
[  155.437479]  xfs_buf_item_unpin+0x1a3/0x220 [xfs]
[  155.439327]  xfs_trans_committed_bulk+0x165/0x2b0 [xfs]
[  155.453696] sched: RT throttling activated
");
    assert_eq!(r.title, "BUG: soft lockup in xfs_buf_item_unpin");
    assert_eq!(r.kind, CrashKind::SoftLockup);
    assert_eq!((r.comm.as_deref(), r.pid), (Some("xfs_io"), Some(1203)));
    assert!(!r.corrupted);
}

#[test]
fn lockdep_recursive_and_inconsistent() {
    let r = one("\
============================================
WARNING: possible recursive locking detected
6.1.192 #1 Not tainted
--------------------------------------------
nfsd/301 is trying to acquire lock:
ffff9c4d4385f4d8 (&clp->cl_lock){+.+.}-{2:2}, at: nfsd4_probe_callback+0x2a/0x90 [nfsd]

but task is already holding lock:
ffff9c4d4385f4d8 (&clp->cl_lock){+.+.}-{2:2}, at: nfsd4_create_session+0x4d1/0x7d0 [nfsd]

stack backtrace:
CPU: 0 PID: 301 Comm: nfsd Not tainted 6.1.192 #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x5b/0x77
 __lock_acquire.cold+0x1b4/0x2c4
 lock_acquire+0xc8/0x2d0
 _raw_spin_lock+0x2f/0x40
 nfsd4_probe_callback+0x2a/0x90 [nfsd]
 </TASK>
");
    assert_eq!(r.title, "possible deadlock in nfsd4_probe_callback");
    assert_eq!(r.kind, CrashKind::Lockdep);
    assert_eq!(r.release.as_deref(), Some("6.1.192"));

    let r = one("\
================================
WARNING: inconsistent lock state
6.1.192 #1 Tainted: G        W         
--------------------------------
inconsistent {SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W} usage.
swapper/0/0 [HC0[0]:SC1[1]:HE1:SE0] takes:
ffff888012b7c4d8 (&nn->client_lock){+.?.}-{2:2}, at: nfsd4_cb_done+0x3a/0x2c0 [nfsd]
{SOFTIRQ-ON-W} state was registered at:
  lock_acquire+0xc8/0x2d0
  _raw_spin_lock+0x2f/0x40
  nfs4_laundromat+0x8c/0x6a0 [nfsd]
stack backtrace:
CPU: 0 PID: 0 Comm: swapper/0 Tainted: G        W          6.1.192 #1
Call Trace:
 <IRQ>
 dump_stack_lvl+0x5b/0x77
 mark_lock.part.0+0x7a2/0x870
 </IRQ>
");
    assert_eq!(r.title, "inconsistent lock state in nfsd4_cb_done");
    assert_eq!(r.taint.as_deref(), Some("G        W"));
}

#[test]
fn standalone_panics_and_tails() {
    assert_eq!(
        titles("[    2.310000] VFS: Cannot open root device \"vda\" or unknown-block(0,0): error -6\n[    2.320000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n[    2.330000] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.192 #1\n[    2.340000] Call Trace:\n[    2.340000]  <TASK>\n[    2.350000]  dump_stack_lvl+0x44/0x5c\n[    2.350000]  panic+0x118/0x2ed\n[    2.360000]  mount_block_root+0x1d3/0x1e6\n[    2.360000]  </TASK>\n[    2.370000] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0) ]---\n"),
        vec!["kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)"]
    );
    // Two runs that differ in the exit code title alike.
    assert_eq!(
        titles("Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n"),
        vec!["kernel panic: Attempted to kill init!"]
    );
    // A fatal-exception panic with no report before it is still a crash...
    assert_eq!(
        titles("Kernel panic - not syncing: Fatal exception\n"),
        vec!["kernel panic: Fatal exception"]
    );
    // ...but right after a report it only closes that report, even after unrelated lines.
    let log = "\
kernel BUG at fs/nfs/write.c:700!
RIP: 0010:nfs_inode_add_request+0x1/0x2 [nfs]
---[ end trace 0000000000000000 ]---
random: crng reseeded
Kernel panic - not syncing: Fatal exception in interrupt
";
    assert_eq!(titles(log), vec!["kernel BUG in nfs_inode_add_request"]);
}

#[test]
fn user_space_and_shell_lines_are_not_crashes() {
    assert!(titles(
        "\
traps: a.out[233] general protection fault ip:7f2a4c1e4d2b sp:7ffc8b1c2f80 error:0 in libc.so.6[7f2a4c1a6000+155000]
a.out[234]: segfault at 0 ip 000055a4d2c011f6 sp 00007ffc8b1c2f90 error 6 in a.out[55a4d2c01000+1000]
WARNING: this is just a script
BUG: just a script
INFO: task list follows
Oops: nothing to do
"
    )
    .is_empty());
}

#[test]
fn same_bug_same_title_across_builds() {
    let a = "[ 1.0] WARNING: CPU: 0 PID: 55 at fs/x.c:1243 foo_bar.isra.0+0x135/0x199\n[ 1.1] ---[ end trace 0000000000000000 ]---\n";
    let b = "[ 9.9][ T77] WARNING: CPU: 3 PID: 1234 at fs/x.c:1250 foo_bar.constprop.0+0x1a5/0x210 [x]\r\n[ 9.9][ T77] ---[ end trace 7b4c4bbe1dd9e99a ]---\r\n";
    assert_eq!(titles(a), titles(b));
    assert_eq!(titles(a), vec!["WARNING in foo_bar"]);
}

#[test]
fn prefixes_of_other_log_sources() {
    let journal = "May 28 02:04:57 node01 kernel: [24224.104418] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000\nMay 28 02:04:57 node01 kernel: [24224.259076] pc : __queue_work+0xb4/0x558\nMay 28 02:04:57 node01 kernel: [24224.460013] ---[ end trace 7b4c4bbe1dd9e99a ]---\n";
    assert_eq!(
        titles(journal),
        vec!["Unable to handle kernel NULL pointer dereference in __queue_work"]
    );
    let dmesg_t = "[Wed May 28 02:04:57 2025] kernel BUG at mm/slub.c:379!\n[Wed May 28 02:04:57 2025] RIP: 0010:kfree+0x1/0x2\n[Wed May 28 02:04:57 2025] Call Trace:\n[Wed May 28 02:04:57 2025]  nfsd_file_free+0x1/0x2 [nfsd]\n[Wed May 28 02:04:57 2025] ---[ end trace 0 ]---\n";
    assert_eq!(titles(dmesg_t), vec!["kernel BUG in kfree"]);
}

#[test]
fn detector_lifecycle() {
    let mut d = Detector::new();
    assert!(!d.in_report());
    assert!(d
        .feed(b"[ 1.0] ordinary line\n[ 2.0] BUG: kernel NULL pointer dereference, add")
        .is_empty());
    assert!(!d.in_report(), "a header is not seen before its line is complete");
    assert!(d
        .feed(b"ress: 0000000000000000\n[ 2.1] RIP: 0010:foo+0x1/0x2\n")
        .is_empty());
    assert!(d.in_report());
    // The natural end: the report waits for its tail...
    assert!(d
        .feed(b"[ 2.2] ---[ end trace 0000000000000000 ]---\n[ 2.3] RIP: 0010:foo+0x1/0x2\n")
        .is_empty());
    assert!(d.in_report());
    // ...and is returned at the end of the panic, its tail included.
    let got = d.feed(b"[ 2.4] Kernel panic - not syncing: Fatal exception\n[ 2.5] ---[ end Kernel panic - not syncing: Fatal exception ]---\n");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].title, "BUG: kernel NULL pointer dereference in foo");
    assert!(!got[0].corrupted);
    assert!(!d.in_report());
    assert!(d.finish().is_empty());

    // Without a panic the first line after the tail returns it.
    let mut d = Detector::new();
    d.feed(b"WARNING: CPU: 0 PID: 1 at a.c:1 foo+0x1/0x2\n---[ end trace 0 ]---\n");
    assert!(d.in_report());
    assert_eq!(d.feed(b"login: ").len(), 0);
    assert_eq!(d.feed(b"\n").len(), 1);

    // A report the guest never finished printing comes out corrupted at finish().
    let mut d = Detector::new();
    d.feed(b"BUG: unable to handle page fault for address: ffffeb0a00000008\nRIP: 0010:foo+0x1/0x2\nCall Trace:\n <TASK>\n bar+0x1/0x2\n");
    let got = d.finish();
    assert_eq!(got.len(), 1);
    assert!(got[0].corrupted);
    assert_eq!(got[0].title, "BUG: unable to handle page fault in foo");
}

#[test]
fn a_new_header_ends_the_previous_report() {
    let r = parse(b"WARNING: CPU: 0 PID: 1 at a.c:1 foo+0x1/0x2\nRIP: 0010:foo+0x1/0x2\nBUG: kernel NULL pointer dereference, address: 0000000000000000\nRIP: 0010:bar+0x1/0x2\n---[ end trace 0 ]---\n");
    assert_eq!(r.len(), 2);
    assert!(r[0].corrupted, "the WARNING never reached its end marker");
    assert!(!r[1].corrupted);
    assert_eq!(r[1].title, "BUG: kernel NULL pointer dereference in bar");
}

#[test]
fn line_cap_marks_corrupted() {
    let mut log = String::from("kernel BUG at fs/x.c:1!\nRIP: 0010:foo+0x1/0x2\n");
    for i in 0..1000 {
        log.push_str(&format!("noise line {i}\n"));
    }
    let r = parse(log.as_bytes());
    assert_eq!(r.len(), 1);
    assert!(r[0].corrupted);
    assert_eq!(r[0].text.lines().count(), repro_oops::MAX_REPORT_LINES);

    // Repeated panic lines inside a report that has no trace yet are capped too.
    let mut log = String::from("BUG: kernel NULL pointer dereference, address: 0000000000000000\n");
    for _ in 0..1000 {
        log.push_str("Kernel panic - not syncing: Fatal exception\n");
    }
    let r = parse(log.as_bytes());
    assert_eq!(r.len(), 1);
    assert!(r[0].corrupted);
    assert!(r[0].text.lines().count() <= repro_oops::MAX_REPORT_LINES);
}

#[test]
fn json_shape_and_kind_names() {
    let r = one("BUG: kernel NULL pointer dereference, address: 0000000000000000\nRIP: 0010:foo+0x1/0x2 [m]\nCall Trace:\n ? bar+0x1/0x2\n---[ end trace 0 ]---\n");
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["title"], "BUG: kernel NULL pointer dereference in foo");
    assert_eq!(v["type"], "null-deref");
    assert_eq!(v["corrupted"], false);
    assert_eq!(v["frames"][0]["function"], "bar");
    assert_eq!(v["frames"][0]["reliable"], false);
    let back: Report = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
    assert_eq!(kind_name(&CrashKind::KasanUseAfterFree), "kasan-use-after-free");
    assert_eq!(CrashKind::RcuStall.to_string(), "rcu-stall");
    let all = [
        CrashKind::NullDeref,
        CrashKind::PagingFault,
        CrashKind::GeneralProtection,
        CrashKind::KasanUseAfterFree,
        CrashKind::KasanOutOfBounds,
        CrashKind::Kasan,
        CrashKind::Kfence,
        CrashKind::Kcsan,
        CrashKind::Kmsan,
        CrashKind::MemoryLeak,
        CrashKind::Ubsan,
        CrashKind::Warning,
        CrashKind::Bug,
        CrashKind::Panic,
        CrashKind::HungTask,
        CrashKind::RcuStall,
        CrashKind::SoftLockup,
        CrashKind::Lockdep,
        CrashKind::Oops,
    ];
    for k in all {
        assert_eq!(
            serde_json::to_value(&k).unwrap(),
            kind_name(&k),
            "serde and kind_name agree"
        );
    }
}

/// Before its end marker a report is in its body; after it, only its tail may follow, so a
/// live caller can close it after a short quiet instead of a long one.
#[test]
fn the_tail_phase_starts_at_the_end_marker() {
    let mut d = Detector::new();
    d.feed(b"BUG: kernel NULL pointer dereference, address: 0000000000000000\nRIP: 0010:crash_null+0xc/0x13 [crashmod]\nCall Trace:\n <TASK>\n do_one_initcall+0x59/0x220\n </TASK>\n");
    assert!(d.in_report() && !d.in_tail());
    d.feed(b"CR2: 0000000000000000\n---[ end trace 0000000000000000 ]---\n");
    assert!(d.in_report() && d.in_tail());
    d.feed(b"RIP: 0010:crash_null+0xc/0x13 [crashmod]\nCR2: ffffffffc02b1fe2 CR3: 0000000020b00000 CR4: 0000000000751eb0\n");
    assert!(d.in_tail());
    let got = d.finish();
    assert_eq!(got.len(), 1);
    assert!(!got[0].corrupted);
    assert_eq!(got[0].title, "BUG: kernel NULL pointer dereference in crash_null");
}

/// A symbol-less entry (` ? 0xffffffffc0495000`, module text) inside an x86 trace does not make
/// a clean report look interleaved (real: tests/data/real-qemu-6.1-x86-module-warn.log).
#[test]
fn a_raw_address_in_a_trace_is_not_interleaving() {
    let log = std::fs::read("tests/data/real-qemu-6.1-x86-module-warn.log").unwrap();
    let r = parse(&log);
    assert_eq!(r.len(), 1);
    assert!(!r[0].corrupted, "{:#?}", r[0]);
    let names: Vec<&str> = r[0].frames.iter().map(|f| f.function.as_str()).collect();
    assert_eq!(&names[..3], ["crashmod_init", "do_one_initcall", "do_init_module"]);
}

const BANNER: &str = "[    0.000000] Linux version 6.1.192-repro (repro@repro) (gcc (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT\n";

/// A second kernel banner with no crash before it is a reboot nobody asked for; the log's
/// first boot, a reboot after a crash, and a boot the caller expects are not.
#[test]
fn a_fresh_boot_mid_run_is_an_unexpected_reboot_but_the_first_boot_is_not() {
    let running =
        format!("{BANNER}[    1.000000] Run /init as init process\n[   20.000000] nfs: server 127.0.0.1 OK\n");
    assert!(titles(&running).is_empty());
    let rebooted = format!("{running}{BANNER}[    1.000000] Run /init as init process\n");
    assert_eq!(titles(&rebooted), ["unexpected kernel reboot"]);
    // The x86 decompressor announces the boot, then the new kernel prints its banner: one reboot.
    let decompressed = format!("{running}Decompressing Linux... Parsing ELF... done.\nBooting the kernel.\n{BANNER}");
    assert_eq!(titles(&decompressed), ["unexpected kernel reboot"]);
    // At the top of a log the decompressor's line is the first boot.
    assert!(titles(&format!("Booting the kernel.\n{BANNER}")).is_empty());
    // A panic asks for the reboot that follows it.
    let panicked = format!("{running}[   21.000000] Kernel panic - not syncing: sysrq triggered crash\n{BANNER}");
    assert_eq!(titles(&panicked), ["kernel panic: sysrq triggered crash"]);
    // A journal of several boots says where each begins.
    let journal = format!("{running}-- Boot 3f2a9c0e1b7d4e5f8a6b2c1d0e9f8a7b --\n{BANNER}");
    assert!(titles(&journal).is_empty());
    assert!(titles(&format!("{running}-- Reboot --\n{BANNER}")).is_empty());
    // A power cut: the caller says the next boot is expected.
    let mut d = Detector::new();
    assert!(d.feed(running.as_bytes()).is_empty());
    d.expect_boot();
    assert!(d.feed(BANNER.as_bytes()).is_empty());
    assert!(d.finish().is_empty());
    // ... and only that one.
    let mut d = Detector::new();
    d.feed(running.as_bytes());
    d.expect_boot();
    d.feed(running.as_bytes());
    d.feed(BANNER.as_bytes());
    let got: Vec<String> = d.finish().into_iter().map(|r| r.title).collect();
    assert_eq!(got, ["unexpected kernel reboot"]);
}

/// A kernel without ORC or frame pointers guesses its trace and marks every frame `?`: those
/// frames still name the crash. One reliable frame is enough to ignore the guessed ones.
#[test]
fn a_trace_of_guessed_frames_still_names_the_function() {
    let guessed = "\
[    9.575670] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    9.576300] #PF: supervisor instruction fetch in kernel mode
[    9.577234] RIP: 0010:0x0
[    9.578347] Call Trace:
[    9.578347]  ? __die_body+0x1a/0x60
[    9.578347]  ? page_fault_oops+0x15a/0x2d0
[    9.578347]  ? step_into+0x5d3/0x750
[    9.578347]  ? path_lookupat+0x92/0x190
[    9.578347] ---[ end trace 0000000000000000 ]---
";
    let r = one(guessed);
    assert_eq!(r.title, "BUG: kernel NULL pointer dereference in step_into");
    assert!(!r.corrupted);
    let r = one(&guessed.replace("  ? path_lookupat", "  path_lookupat"));
    assert_eq!(r.title, "BUG: kernel NULL pointer dereference in path_lookupat");
}

/// A report whose function is lost (its trace cut off before any frame, no symbol in RIP) is
/// `... in corrupted`, syzbot's form, and marked corrupted; a family without a function is not.
#[test]
fn a_report_that_lost_its_function_is_titled_in_corrupted() {
    let r = one("\
[    9.582512] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    9.582512] #PF: supervisor instruction fetch in kernel mode
[    9.582512] RIP: 0010:0x0
");
    assert_eq!(r.title, "BUG: kernel NULL pointer dereference in corrupted");
    assert!(r.corrupted);
    let r = one("[  928.754534] WARNING: kernel stack regs at 00000000d9dac8ad in fork13:28354 has bad 'bp' value 0000000000000000\n");
    assert_eq!(r.title, "WARNING: kernel stack regs has bad value");
    assert!(!r.corrupted);
}
