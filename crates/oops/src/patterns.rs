//! Every pattern the parser knows, as data: report headers, line shapes, and the tables of
//! functions that never name a crash. Code elsewhere only walks these tables.
//!
//! All regexes are for the `regex` crate, which matches in time linear in the input (no
//! backtracking), so no line can make the parser slow.

use crate::lead::{Gated, Lead};
use crate::report::CrashKind;
use regex::{Regex, RegexSet};
use std::sync::OnceLock;

/// Where the `FUNC` of a title comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FuncRule {
    /// No function in the title.
    None,
    /// The faulting instruction (`RIP:` / `pc :`), then `lr :`, then the call trace.
    Fault,
    /// The function in the header's capture group N, then as [`FuncRule::Fault`].
    Header(usize),
    /// The frames right after the line containing this text (a stack the report prints
    /// besides its call trace, such as page_owner's allocation stack); no function without it.
    After(&'static str),
    /// The function named after this text on a line of the report (`last function: FUNC`).
    Named(&'static str),
    /// The call trace only.
    Trace,
    /// The call trace of a blocked task, skipping scheduler and sleeping-lock frames.
    Hung,
    /// The interrupted context of a stalled CPU: `RIP:`/`pc :` (then `lr :`) lines and frames outside
    /// interrupt sections, after the last interrupt-entry frame.
    Stall,
    /// The first `, at: FUNC+0x..` line after a line containing this text, then the trace.
    Lockdep(&'static str),
}

impl FuncRule {
    /// The title always names a function (` in FUNC`); without one the report is corrupted.
    /// `After` and `Named` name one only when the report prints what they look for.
    pub(crate) fn names_a_function(self) -> bool {
        !matches!(self, FuncRule::None | FuncRule::After(_) | FuncRule::Named(_))
    }
}

/// How a report of this header ends naturally (besides `---[ end trace` and a panic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndRule {
    /// `---[ end trace ... ]---` (oops, WARN, BUG).
    Marker,
    /// A closing `=====` line (KASAN, KFENCE).
    Sanitizer,
    /// The end of its call trace (hung task, stalls, lockdep, UBSAN, panic).
    Trace,
    /// The header line is the whole report.
    Line,
}

/// One kind of report header.
pub(crate) struct HeaderDef {
    /// Regex matched against the cleaned line.
    pub re: &'static str,
    pub kind: CrashKind,
    /// Title without the ` in FUNC` part; `{1}`, `{2}` are capture groups of `re`, `{access}`
    /// is ` Read` / ` Write` from a KASAN access line (or nothing).
    pub title: &'static str,
    pub func: FuncRule,
    pub end: EndRule,
    /// Only starts a report when none is in progress: inside a report it is part of it (e.g.
    /// `Oops: 0002 [#1] SMP` after `BUG: kernel NULL pointer dereference`).
    pub continuation: bool,
    /// Skipped for the title's function besides [`SKIP_GENERIC`]: the helpers of the check that
    /// reported (refcount, debug objects, the allocator) and the calls that reach them.
    pub skip: &'static [&'static str],
    /// A boot marker: a report only when a kernel was already running (see the detector).
    pub boot: bool,
}

impl HeaderDef {
    const fn skipping(self, skip: &'static [&'static str]) -> Self {
        HeaderDef { skip, ..self }
    }

    const fn booting(self) -> Self {
        HeaderDef { boot: true, ..self }
    }

    const fn continuing(self) -> Self {
        HeaderDef {
            continuation: true,
            ..self
        }
    }
}

const fn h(re: &'static str, kind: CrashKind, title: &'static str, func: FuncRule, end: EndRule) -> HeaderDef {
    HeaderDef {
        re,
        kind,
        title,
        func,
        end,
        continuation: false,
        skip: &[],
        boot: false,
    }
}

const fn cont(re: &'static str, kind: CrashKind, title: &'static str) -> HeaderDef {
    HeaderDef {
        re,
        kind,
        title,
        func: FuncRule::Fault,
        end: EndRule::Marker,
        continuation: true,
        skip: &[],
        boot: false,
    }
}

/// A function name as the kernel prints it in `name+0xoff/0xsize`.
macro_rules! sym {
    () => {
        r"(?:\[<[0-9a-fA-F]+>\]\s*)?([A-Za-z_.$][A-Za-z0-9_.$]*)"
    };
}

/// The start of a `WARNING: CPU: 0 PID: 1 at ` line, up to the warning's source path.
macro_rules! warn_at {
    () => {
        r"^WARNING: CPU: \d+ (?:UID: \d+ )?PID: \d+ at (?:\S*/)?"
    };
}

use CrashKind as K;
use EndRule as E;
use FuncRule as F;

/// Report headers, most specific first: the first that matches a line wins.
#[rustfmt::skip]
pub(crate) static HEADERS: &[HeaderDef] = &[
    // Sanitizers.
    // A double or invalid free is named for the caller of the free (syzbot's title).
    h(r"^BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in \S+", K::Kasan, "KASAN: invalid-free", F::Fault, E::Sanitizer).skipping(SKIP_FREE),
    h(concat!(r"^BUG: KASAN: ([a-z0-9-]*use-after-free) in ", sym!()), K::KasanUseAfterFree, "KASAN: {1}{access}", F::Header(2), E::Sanitizer),
    h(concat!(r"^BUG: KASAN: ([a-z0-9-]*out-of-bounds) in ", sym!()), K::KasanOutOfBounds, "KASAN: {1}{access}", F::Header(2), E::Sanitizer),
    h(concat!(r"^BUG: KASAN: ([a-z0-9-]+(?: or [a-z0-9-]+)?) in ", sym!()), K::Kasan, "KASAN: {1}{access}", F::Header(2), E::Sanitizer),
    h(concat!(r"^BUG: KFENCE: ([a-z][a-z -]*?) in ", sym!()), K::Kfence, "KFENCE: {1}", F::Header(2), E::Sanitizer),
    // 4.x/5.x UBSAN said what it found on the next line (syzbot names it `undefined-behaviour`).
    h(r"^UBSAN: Undefined behaviour in \S+:\d+:\d+", K::Ubsan, "UBSAN: undefined-behaviour", F::Trace, E::Trace).skipping(SKIP_UBSAN),
    h(r"^UBSAN: (.+?) in \S+:\d+:\d+", K::Ubsan, "UBSAN: {1}", F::Trace, E::Trace).skipping(SKIP_UBSAN),
    // An infoleak is found in the copy to user space: named for its caller.
    h(concat!(r"^BUG: KMSAN: ([a-z0-9-]+) in ", sym!()), K::Kmsan, "KMSAN: {1}", F::Header(2), E::Sanitizer).skipping(SKIP_KMSAN),
    // A data race names both sides, as the header does (syzbot's title).
    h(r"^BUG: KCSAN: ([a-z-]+) in (\S+(?: \[[\w-]+\])?(?: / \S+(?: \[[\w-]+\])?)?)\s*$", K::Kcsan, "KCSAN: {1} in {2}", F::None, E::Sanitizer),
    // x86 page faults (5.x/6.x wording, then 4.x wording) and GPF.
    h(r"^BUG: kernel NULL pointer dereference, address", K::NullDeref, "BUG: kernel NULL pointer dereference", F::Fault, E::Marker),
    h(r"^BUG: unable to handle kernel NULL pointer dereference", K::NullDeref, "BUG: unable to handle kernel NULL pointer dereference", F::Fault, E::Marker),
    h(r"^BUG: unable to handle page fault for address", K::PagingFault, "BUG: unable to handle page fault", F::Fault, E::Marker),
    h(r"^BUG: unable to handle kernel paging request", K::PagingFault, "BUG: unable to handle kernel paging request", F::Fault, E::Marker),
    h(r"^(?:Oops: )?general protection fault(?:[:,]|$)", K::GeneralProtection, "general protection fault", F::Fault, E::Marker),
    // x86 #DE (a division by zero, or a quotient that does not fit).
    h(r"^(?:Oops: )?divide error: [0-9a-f]{4} ", K::Oops, "divide error", F::Fault, E::Marker),
    h(r"^(?:traps: )?PANIC: double fault", K::Oops, "PANIC: double fault", F::Fault, E::Marker),
    // arm64 faults.
    h(r"^Unhandled fault at 0x[0-9a-fA-F]+", K::PagingFault, "Unhandled fault", F::Fault, E::Marker),
    h(r"^Unable to handle kernel NULL pointer dereference at virtual address", K::NullDeref, "Unable to handle kernel NULL pointer dereference", F::Fault, E::Marker),
    h(r"^Unable to handle kernel (.+?) at virtual address", K::PagingFault, "Unable to handle kernel {1}", F::Fault, E::Marker),
    // A WARNING is named for the subsystem whose check warned (syzbot's titles), the function
    // for the caller of its helpers.
    h(r"^WARNING: CPU: \d+ (?:UID: \d+ )?PID: \d+ at (?:\S*/)?lib/refcount\.c:\d+", K::Warning, "WARNING: refcount bug", F::Fault, E::Marker).skipping(SKIP_REFCOUNT),
    h(r"^WARNING: CPU: \d+ (?:UID: \d+ )?PID: \d+ at (?:\S*/)?lib/debugobjects\.c:\d+", K::Warning, "WARNING: ODEBUG bug", F::Fault, E::Marker).skipping(SKIP_ODEBUG),
    h(r"^WARNING: CPU: \d+ (?:UID: \d+ )?PID: \d+ at (?:\S*/)?kernel/locking/lockdep\.c:\d+", K::Warning, "WARNING: locking bug", F::Fault, E::Marker).skipping(SKIP_LOCKING),
    // Without BUG_ON_DATA_CORRUPTION (syzbot's kernels have it) a list debug check warns
    // instead of BUG()ing: the same corruption, the same title.
    h(concat!(warn_at!(), r"lib/list_debug\.c:\d+"), K::Warning, "BUG: corrupted list", F::Fault, E::Marker),
    h(concat!(warn_at!(), r"mm/vmalloc\.c:\d+ __vmalloc_node"), K::Warning, "WARNING: zero-size vmalloc", F::Fault, E::Marker).skipping(SKIP_ALLOC),
    h(concat!(warn_at!(), r"mm/\S+\.c:\d+ (?:__)?(?:k|kv|v)?malloc"), K::Warning, "WARNING: kmalloc bug", F::Fault, E::Marker).skipping(SKIP_ALLOC),
    h(concat!(warn_at!(), r"fs/proc/generic\.c:\d+ proc_register"), K::Warning, "WARNING: proc registration bug", F::Fault, E::Marker).skipping(&["proc_*", "__proc_*"]),
    h(concat!(warn_at!(), r"lib/kobject\.c:\d+ kobject_"), K::Warning, "WARNING: kobject bug", F::Fault, E::Marker).skipping(&["kobject_*", "__kobject_*"]),
    // A dentry left at unmount: the BUG line, then (5.x+) a WARNING in umount_check that is
    // part of the same report. Named for the unmount, as syzbot does.
    h(r"^BUG: Dentry [0-9a-f]+\{.*\} +still in use \(\d+\) \[unmount of", K::Oops, "BUG: Dentry still in use in unmount", F::None, E::Marker),
    h(concat!(warn_at!(), r"fs/dcache\.c:\d+ umount_check"), K::Warning, "BUG: Dentry still in use in unmount", F::None, E::Marker).continuing(),
    // The unwinder found a corrupt frame (named without the addresses).
    h(r"^WARNING: kernel stack regs at [0-9a-f]+ in \S+ has bad '\w+' value", K::Warning, "WARNING: kernel stack regs has bad value", F::None, E::Line),
    h(r"^WARNING: kernel stack frame pointer at [0-9a-f]+ in \S+ has bad value", K::Warning, "WARNING: kernel stack frame pointer has bad value", F::None, E::Line),
    // BUG_ON / WARN_ON. A list debug check is named for what it found (syzbot's title).
    h(r"^kernel BUG at lib/list_debug\.c:\d+", K::Bug, "BUG: corrupted list", F::Fault, E::Marker),
    h(r"^kernel BUG at mm/usercopy\.c:\d+", K::Bug, "BUG: bad usercopy", F::Fault, E::Marker).skipping(SKIP_USERCOPY),
    h(r"^kernel BUG at \S+", K::Bug, "kernel BUG", F::Fault, E::Marker),
    h(concat!(r"^WARNING: CPU: \d+ (?:UID: \d+ )?PID: \d+ at \S+ ", sym!()), K::Warning, "WARNING", F::Header(1), E::Marker),
    h(concat!(r"^WARNING: \S+:\d+ at ", sym!()), K::Warning, "WARNING", F::Header(1), E::Marker),
    // Lockdep.
    h(r"^WARNING: possible circular locking dependency detected", K::Lockdep, "possible deadlock", F::Lockdep("is trying to acquire lock"), E::Trace),
    h(r"^WARNING: possible recursive locking detected", K::Lockdep, "possible deadlock", F::Lockdep("is trying to acquire lock"), E::Trace),
    h(r"^WARNING: possible irq lock inversion dependency detected", K::Lockdep, "possible deadlock", F::Lockdep("just changed the state of lock"), E::Trace),
    h(r"^WARNING: [A-Z]+-safe -> [A-Z]+-unsafe lock order detected", K::Lockdep, "possible deadlock", F::Lockdep("is trying to acquire"), E::Trace),
    h(r"^WARNING: inconsistent lock state", K::Lockdep, "inconsistent lock state", F::Lockdep("takes:"), E::Trace),
    h(r"^WARNING: suspicious RCU usage", K::Lockdep, "WARNING: suspicious RCU usage", F::Trace, E::Trace).skipping(SKIP_RCU),
    h(r"^WARNING: bad unlock balance detected", K::Lockdep, "WARNING: bad unlock balance", F::Trace, E::Trace),
    h(r"^\[ BUG: bad unlock balance detected! \]", K::Lockdep, "BUG: bad unlock balance", F::Trace, E::Trace),
    // Named for where the freed lock was taken.
    h(r"^WARNING: held lock freed", K::Lockdep, "WARNING: held lock freed", F::Lockdep("held lock freed"), E::Trace),
    h(r"^(?:\[ )?BUG: held lock freed", K::Lockdep, "BUG: held lock freed", F::Lockdep("held lock freed"), E::Trace),
    h(r"^INFO: trying to register non-static key", K::Lockdep, "INFO: trying to register non-static key", F::Trace, E::Trace).skipping(SKIP_LOCKING),
    h(r"^BUG: (MAX_[A-Z_]+ too low!)", K::Lockdep, "BUG: {1}", F::None, E::Trace),
    // Named for the work function, which returned holding a lock (or with preemption off).
    h(r"^BUG: workqueue leaked lock or atomic", K::Lockdep, "BUG: workqueue leaked lock or atomic", F::Named("last function: "), E::Trace),
    // Hangs and stalls.
    h(r"^INFO: task (?P<comm>.+):(?P<pid>\d+) blocked for more than \d+ seconds", K::HungTask, "INFO: task hung", F::Hung, E::Trace),
    h(r"^(?:rcu: )?INFO: rcu_(?:sched|preempt|bh) (?:self-detected stall|detected (?:expedited )?stalls?)", K::RcuStall, "INFO: rcu detected stall", F::Stall, E::Trace),
    h(r"^(?:(?:NMI )?watchdog: )?BUG: soft lockup - CPU#\d+ stuck for \d+s! \[(?P<comm>.+):(?P<pid>\d+)\]", K::SoftLockup, "BUG: soft lockup", F::Stall, E::Trace),
    h(r"^(?:(?:NMI )?watchdog: )?Watchdog detected hard LOCKUP on cpu \d+", K::Oops, "BUG: hard lockup", F::Stall, E::Trace),
    // Other BUG: lines.
    h(r"^BUG: sleeping function called from invalid context", K::Oops, "BUG: sleeping function called from invalid context", F::Trace, E::Trace),
    h(r"^BUG: scheduling while atomic", K::Oops, "BUG: scheduling while atomic", F::Trace, E::Trace),
    h(r"^BUG: using ([a-z_]+)\(\) in preemptible", K::Oops, "BUG: using {1}() in preemptible code", F::Trace, E::Trace).skipping(SKIP_PREEMPT),
    h(r"^BUG: spinlock (.+?) on CPU#\d+", K::Oops, "BUG: spinlock {1}", F::Trace, E::Trace),
    // Named for the page's allocator when page_owner printed its stack (syzbot's title).
    h(r"^BUG: Bad page state in process", K::Oops, "BUG: Bad page state", F::After("page last allocated"), E::Trace).skipping(SKIP_PAGE_ALLOC),
    // kmemleak, as its debugfs file and (`kmemleak.verbose`) the console print it; `BUG: memory
    // leak` is the line syzkaller writes before each object. Named for the allocation's caller.
    h(r"^BUG: memory leak", K::MemoryLeak, "memory leak", F::Trace, E::Trace).skipping(SKIP_ALLOC),
    h(r"^unreferenced object 0x[0-9a-f]+ \(size \d+\):", K::MemoryLeak, "memory leak", F::Trace, E::Trace).skipping(SKIP_ALLOC).continuing(),
    h(r"^BUG: stack guard page was hit at", K::Oops, "BUG: stack guard page was hit", F::Fault, E::Marker),
    h(r"^BUG: workqueue lockup", K::Oops, "BUG: workqueue lockup", F::None, E::Line),
    h(r"^BUG: Bad rss-counter state", K::Oops, "BUG: Bad rss-counter state", F::None, E::Line),
    // Panics. A panic that merely closes another report is handled by the detector. The
    // scheduler's stack-end check names the task that overran its stack (syzbot's title).
    h(concat!(r"^Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: ", sym!()), K::Panic, "kernel panic: stack is corrupted", F::Header(1), E::Trace),
    h(r"^Kernel panic - not syncing: corrupted stack end", K::Panic, "kernel panic: corrupted stack end", F::Fault, E::Trace).skipping(SKIP_SCHED),
    h(r"^Kernel panic - not syncing: ?(.*)", K::Panic, "kernel panic: {1}", F::None, E::Trace),
    // A kernel booting while one was running: the banner (capture 1), or the x86 decompressor's
    // last line (syzbot's `unexpected kernel reboot`).
    h(r"^(?:(Linux version) \d+\.\d+\S* \(|Booting the kernel\.)", K::Oops, "unexpected kernel reboot", F::None, E::Line).booting(),
    // Lines that open a report only when none is in progress.
    cont(r"^Internal error: Oops - BUG: ", K::Bug, "Internal error"),
    cont(r"^Internal error: ", K::Oops, "Internal error"),
    cont(r"^(?:Oops: )?invalid opcode: [0-9a-fA-F]+ \[#\d+\]", K::Oops, "invalid opcode"),
    cont(r"^Oops: (?:Oops: )?[0-9a-fA-F]+ \[#\d+\]", K::Oops, "Oops"),
];

/// `Kernel panic - not syncing:` messages that close an earlier report rather than being a
/// crash of their own (when a report ended shortly before them).
const PANIC_TAIL: &str = r"(?i)fatal exception|panic_on_warn set|panic_on_oops|hung_task: blocked tasks|softlockup: hung tasks|rcu stall|hard lockup|attempted to kill the idle task|aiee, killing interrupt handler|attempted to kill init|fatal machine check";

/// Rewrites applied to a standalone panic message so that two runs title alike.
const PANIC_NORMALIZE: &[(&str, &str)] = &[
    (r"^(Attempted to kill init!).*$", "$1"),
    (r"^(Attempted to kill the idle task!).*$", "$1"),
];

/// A register dump line (x86 and arm64): continues a call trace instead of ending it.
const REGDUMP: &str = r"^\s*(?:(?:RIP|EIP|RSP|ESP|RAX|EAX|RBX|EBX|RCX|ECX|RDX|EDX|RBP|EBP|RSI|ESI|RDI|EDI|R\d\d|FS|GS|CS|DS|ES|SS|CR\d|DR\d|Code|PKRU|ORIG_RAX|EFLAGS)\s*:|x\d{1,2}\s*:\s*[0-9a-fA-F]|(?:pc|lr|sp|pstate)\s*:|(?:PC|LR) is at )";

/// Lines that may follow a report's natural end and still belong to it.
const TAIL_LINES: &[&str] = &[
    REGDUMP,
    r"^---\[ end trace",
    r"^={20,}\s*$",
    r"^Modules linked in:",
    r"^Kernel Offset:",
    r"^PHYS_OFFSET:",
    r"^CPU features:",
    r"^Memory Limit:",
    r"^Rebooting in \d+ seconds",
    r"^SMP: stopping secondary CPUs",
    r"^Shutting down cpus with NMI",
    r"^Disabling lock debugging due to kernel taint",
    r"^note: .* exited with ",
    r"^Fixing recursive fault but reboot is needed",
    r"^Dumping ftrace buffer:",
    r"^\s*\(ftrace buffer empty\)",
];

/// Generic helpers: never the `FUNC` of a title. A trailing `*` matches any suffix.
#[rustfmt::skip]
pub(crate) static SKIP_GENERIC: &[&str] = &[
    // Locking primitives.
    "_raw_spin_*", "_raw_read_*", "_raw_write_*", "__raw_spin_*", "__raw_read_*", "__raw_write_*",
    "do_raw_spin_*", "do_raw_read_*", "do_raw_write_*", "arch_spin_*", "spin_lock*", "spin_unlock*",
    "queued_spin_lock_slowpath", "native_queued_spin_lock_slowpath*", "__pv_queued_spin_lock_slowpath",
    "pv_queued_spin_lock_slowpath", "queued_read_lock_slowpath", "queued_write_lock_slowpath",
    "_atomic_dec_and_lock*", "mutex_lock*", "mutex_unlock*", "mutex_trylock*", "__mutex_lock*",
    "__mutex_unlock_slowpath*", "mutex_spin_on_owner", "down_read*", "down_write*", "up_read", "up_write",
    "__down_read*", "__down_write*", "__up_read", "__up_write", "rwsem_down_*", "rwsem_optimistic_spin",
    "rt_mutex_*", "__rt_mutex_*", "rt_spin_*",
    // Lockdep internals.
    "lock_acquire*", "lock_release", "lock_acquired", "lock_contended", "__lock_acquire*", "__lock_release",
    "lock_is_held_type", "check_noncircular", "check_prev_add", "check_prevs_add", "validate_chain",
    "print_circular_bug*", "print_deadlock_bug", "check_deadlock", "mark_lock*", "mark_usage", "print_usage_bug*",
    "valid_state", "lockdep_*", "debug_check_no_locks_freed", "register_lock_class", "look_up_lock_class",
    "assign_lock_key", "print_unlock_imbalance_bug*", "print_freed_lock_bug",
    // Memory and string helpers.
    "memcpy*", "memset*", "memmove*", "__memcpy*", "__memset*", "__memmove*", "memcmp", "__memcmp", "bcmp",
    "memchr*", "memscan", "strlen", "strnlen", "strcmp", "strncmp", "strcpy", "strncpy", "strscpy*", "sized_strscpy",
    "strlcpy", "strcat", "strncat", "strchr", "strrchr", "strstr", "strsep", "strspn", "strcspn", "strpbrk",
    "strcasecmp", "strncasecmp", "__strlen*", "fortify_panic", "__fortify_*", "copy_user_*", "copy_to_user*",
    "copy_from_user*", "_copy_to_user", "_copy_from_user", "raw_copy_*", "__copy_user*", "__copy_to_user*",
    "__copy_from_user*", "rep_movs_alternative", "rep_stos_alternative", "__arch_copy_*", "__get_user_*",
    "__put_user_*", "strncpy_from_user", "strnlen_user", "__clear_user", "clear_user",
    // printk and stack dumping.
    "printk*", "vprintk*", "_printk*", "__printk*", "dump_stack*", "__dump_stack", "show_stack*", "show_regs",
    "__show_regs", "show_trace_log_lvl", "dump_backtrace*", "sched_show_task", "dump_cpu_task", "nmi_cpu_backtrace*",
    "nmi_trigger_cpumask_backtrace", "arch_trigger_cpumask_backtrace", "show_regs_print_info", "dump_stack_print_info",
    // WARN / BUG / fault / panic plumbing (x86 and arm64).
    "__warn", "__warn_printk", "warn_slowpath_*", "report_bug", "handle_bug", "fixup_bug*", "exc_invalid_op",
    "do_invalid_op", "invalid_op", "do_error_trap", "do_trap", "asm_exc_*", "bug_handler", "brk_handler",
    "bug_brk_handler", "call_break_hook", "do_debug_exception", "el1_dbg", "el1h_64_sync*", "el1_sync*", "el1_abort",
    "el1_da", "el1_pc", "el1_undef", "el1_bti", "el1_fpac", "el1_inv", "do_el1_*", "do_mem_abort",
    "do_translation_fault", "do_page_fault", "__do_page_fault", "do_bad_area", "__do_kernel_fault*",
    "die_kernel_fault", "do_kernel_fault", "arm64_notify_die", "die", "__die", "__die_body", "die_addr", "oops_begin",
    "oops_end", "page_fault_oops", "no_context", "__bad_area_nosemaphore", "bad_area_nosemaphore", "bad_area",
    "do_user_addr_fault", "do_kern_addr_fault", "exc_page_fault", "page_fault", "async_page_fault",
    "do_general_protection", "exc_general_protection", "general_protection", "kernelmode_fixup_or_oops*",
    "fixup_exception", "spurious_kernel_fault", "show_fault_oops", "dump_pagetable", "panic", "vpanic",
    "nmi_panic", "check_panic_on_warn",
    // Sanitizer internals.
    "kasan_*", "__kasan_*", "__asan_*", "check_memory_region*", "check_region_inline", "print_address_description*",
    "print_report", "describe_object*", "print_error_description", "kfence_*", "__kfence_*", "ubsan_*",
    "__ubsan_*", "kcsan_*", "__kcsan_*", "__tsan_*", "kmsan_*", "__msan_*", "__sanitizer_*", "__stack_chk_fail",
    // Other debug checks.
    "__might_sleep", "__might_resched", "___might_sleep", "__might_fault", "might_fault", "debug_smp_processor_id",
    "check_preemption_disabled", "__list_add_valid*", "__list_del_entry_valid*", "refcount_warn_saturate",
    "trace_hardirqs_*", "preempt_count_*", "__local_bh_enable_ip", "_local_bh_enable", "__rcu_read_lock",
    "__rcu_read_unlock", "rcu_read_unlock_strict", "debug_object_*", "debug_print_object", "bad_page",
    "free_page_is_bad*", "free_pages_check*", "check_new_page*",
];

/// Also skipped for UBSAN: its handlers (lib/ubsan.c).
pub(crate) static SKIP_UBSAN: &[&str] = &[
    "handle_overflow",
    "handle_null_ptr_deref",
    "handle_misaligned_access",
    "handle_object_size_mismatch",
];

/// Also skipped for KMSAN: the instrumented copies where an infoleak is found.
pub(crate) static SKIP_KMSAN: &[&str] = &["instrument_*", "copyout*", "copy_page_to_iter*", "_copy_to_iter*"];

/// Also skipped for allocator checks (kmalloc and vmalloc WARNINGs, kmemleak): the allocators,
/// down to their caller.
#[rustfmt::skip]
pub(crate) static SKIP_ALLOC: &[&str] = &[
    "kmalloc*", "__kmalloc*", "kvmalloc*", "__kvmalloc*", "kzalloc*", "kvzalloc*", "kcalloc*", "kvcalloc*",
    "krealloc*", "kvrealloc*", "kmemdup*", "kstrdup*", "kstrndup*", "kasprintf", "kvasprintf*", "kmem_*",
    "__kmem_*", "slab_*", "__slab_*", "___slab_alloc", "vmalloc*", "__vmalloc*", "vzalloc*", "kmemleak_*",
    "create_object", "__create_object", "__do_kmalloc*", "alloc_pages*", "__alloc_pages*",
];

/// Also skipped for a bad page: the page allocator, down to its caller.
#[rustfmt::skip]
pub(crate) static SKIP_PAGE_ALLOC: &[&str] = &[
    "set_page_owner", "__set_page_owner", "post_alloc_hook", "prep_new_page", "get_page_from_freelist",
    "__alloc_pages*", "alloc_pages*", "__folio_alloc*", "folio_alloc*", "alloc_page*", "__get_free_pages",
    "get_zeroed_page*", "vma_alloc_folio*", "__alloc_frozen_pages*", "alloc_frozen_pages*",
];

/// Also skipped for suspicious RCU usage: RCU's own functions.
pub(crate) static SKIP_RCU: &[&str] = &["rcu_*", "__rcu_*", "call_rcu*", "synchronize_rcu*"];

/// Also skipped for a per-CPU access from preemptible code: the check itself.
pub(crate) static SKIP_PREEMPT: &[&str] = &["check_preemption_disabled", "__this_cpu_preempt_check", "this_cpu_*"];

/// Also skipped for a refcount WARNING: the refcount helpers.
pub(crate) static SKIP_REFCOUNT: &[&str] = &["refcount_*", "__refcount_*"];

/// Also skipped for a lockdep WARNING: the lock and RCU entry points that reach lockdep.
pub(crate) static SKIP_LOCKING: &[&str] = &[
    "lock_*",
    "__lock_*",
    "rcu_lock_*",
    "rcu_read_lock*",
    "rcu_read_unlock*",
    "__rcu_read_*",
    "local_lock*",
    "raw_spin_*",
    "spin_*",
    "read_lock*",
    "write_lock*",
    "down_*",
    "up_*",
    "mutex_*",
    "__mutex_*",
];

/// Also skipped for a usercopy BUG: the hardened-usercopy checks and the copy helpers.
pub(crate) static SKIP_USERCOPY: &[&str] = &[
    "usercopy_*",
    "__check_*",
    "check_*",
    "copy_*",
    "_copy_*",
    "__copy_*",
    "strncpy_from_user",
];

/// Also skipped for a KASAN double or invalid free: the free paths down to the culprit's call.
pub(crate) static SKIP_FREE: &[&str] = &[
    "kfree*",
    "kvfree*",
    "kmem_*",
    "__kmem_*",
    "slab_free*",
    "__slab_free",
    "____kasan_*",
    "vfree*",
    "__vfree*",
    "vunmap*",
    "__vunmap",
];

/// Also skipped for an ODEBUG WARNING: the debug-objects checks and the frees that call them.
pub(crate) static SKIP_ODEBUG: &[&str] = &[
    "debug_*",
    "__debug_*",
    "kfree*",
    "kmem_cache_free*",
    "__kmem_cache_free*",
    "slab_free*",
    "__slab_free",
    "free_*",
    "__free_*",
    "kvfree*",
    "vfree*",
    "__vfree*",
    "destroy_*_on_stack",
];

/// Also skipped for hung tasks: the scheduler and the ways of going to sleep.
#[rustfmt::skip]
pub(crate) static SKIP_SCHED: &[&str] = &[
    "schedule*", "__schedule", "context_switch", "__switch_to*", "io_schedule*", "preempt_schedule*",
    "wait_for_completion*", "__wait_for_common", "wait_for_common*", "do_wait_for_common", "bit_wait*",
    "out_of_line_wait_on_bit*", "__wait_on_bit*", "wait_on_bit*", "wait_on_page_bit*", "__lock_page*",
    "__folio_lock*", "folio_wait_bit*", "__wait_on_buffer", "__lock_buffer", "wait_woken", "prepare_to_wait*",
    "finish_wait", "__down*", "down", "down_interruptible", "down_killable", "down_timeout", "percpu_down_*",
    "__percpu_down_*", "percpu_rwsem_wait",
];

/// Also skipped for stalls: timer-interrupt and stall-report plumbing.
#[rustfmt::skip]
pub(crate) static SKIP_STALL: &[&str] = &[
    "asm_sysvec_*", "sysvec_*", "__sysvec_*", "apic_timer_interrupt", "smp_apic_timer_interrupt", "hrtimer_interrupt",
    "__hrtimer_run_queues", "tick_sched_*", "tick_nohz_*", "update_process_times", "rcu_sched_clock_irq*",
    "rcu_check_callbacks", "rcu_dump_cpu_stacks", "print_cpu_stall*", "print_other_cpu_stall*", "check_cpu_stall*",
    "rcu_pending", "watchdog_timer_fn", "irq_exit*", "__irq_exit_rcu", "ret_from_intr", "common_interrupt",
    "asm_common_interrupt", "el1_interrupt", "el1h_64_irq*", "el1_irq", "gic_handle_irq", "handle_domain_irq",
    "__handle_domain_irq", "generic_handle_*", "handle_percpu_devid_irq", "arch_timer_handler_*",
    "call_on_irq_stack", "do_interrupt_handler", "handle_irq_event*", "__handle_irq_event_percpu",
];

/// Frames where a stalled CPU's interrupted context was entered by an interrupt: for stalls,
/// only what follows the last of them counts.
#[rustfmt::skip]
pub(crate) static STALL_BOUNDARY: &[&str] = &[
    "asm_sysvec_*", "apic_timer_interrupt", "asm_common_interrupt", "common_interrupt", "ret_from_intr",
    "el1h_64_irq", "el1_irq",
];

/// Outermost frames: a trace that ends with one of them is complete.
#[rustfmt::skip]
pub(crate) static STACK_BOTTOM: &[&str] = &[
    "ret_from_fork*", "entry_SYSCALL*", "entry_SYSENTER*", "entry_INT80*", "el0t_64_sync*", "el0t_32_sync*",
    "el0_sync*", "el0_svc*", "cpu_startup_entry", "secondary_startup*", "start_secondary", "secondary_start_kernel",
    "start_kernel", "x86_64_start_*", "rest_init", "kthread", "do_syscall_64", "__primary_switched", "kernel_init",
];

/// True if `func` matches an entry of `table` (exact, or prefix for entries ending in `*`).
pub(crate) fn in_table(table: &[&str], func: &str) -> bool {
    table.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => func.starts_with(prefix),
        None => func == *p,
    })
}

/// All compiled patterns.
pub(crate) struct Patterns {
    pub headers: RegexSet,
    /// The starts a header can have.
    pub header_lead: Lead,
    pub header_res: Vec<Regex>,
    pub line_prefix: Regex,
    pub stamp_anywhere: Regex,
    pub frame: Regex,
    /// A frame that syzbot's symbolizer wrote for an inlined function: `func file.c:12 [inline]`.
    pub inline_frame: Regex,
    pub target: Regex,
    pub rip: Regex,
    pub pc_lr: Regex,
    pub pc_is_at: Regex,
    pub call_trace: Regex,
    pub marker: Regex,
    pub regdump: Regex,
    pub tail: RegexSet,
    pub end_trace: Gated,
    pub end_panic: Gated,
    pub sanitizer_end: Gated,
    pub ignore_next_trace: Regex,
    pub cpu_line: Gated,
    pub taint_line: Gated,
    pub ident_line: Gated,
    pub process_line: Gated,
    pub task_line: Gated,
    pub access: Regex,
    pub lock_at: Regex,
    /// A bare function name at the start of the text (`crash_wq_fn [crashmod]`, `foo+0x1/0x2`).
    pub symbol: Regex,
    pub panic_tail: Regex,
    pub panic_normalize: Vec<(Regex, &'static str)>,
}

fn re(s: &str) -> Regex {
    Regex::new(s).unwrap_or_else(|e| panic!("bad built-in pattern {s:?}: {e}"))
}

fn gated(s: &str) -> Gated {
    Gated::new(re(s))
}

fn build() -> Patterns {
    let sym_re = sym!();
    Patterns {
        headers: RegexSet::new(HEADERS.iter().map(|d| d.re)).expect("header patterns"),
        header_lead: Lead::of(&HEADERS.iter().map(|d| d.re).collect::<Vec<_>>()),
        header_res: HEADERS.iter().map(|d| re(d.re)).collect(),
        line_prefix: re(concat!(
            r"^(?:<\d{1,3}>)?",
            r"(?:(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7])\s*:\s*(?:emerg|alert|crit|err|warn|notice|info|debug)\s*:\s?)?",
            r"(?:[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ kernel:\s?|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\S* \S+ kernel:\s?)?",
            r"(?:(?P<stamp>\[\s*\+?\d+\.\d+\]|\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]?\d \d\d:\d\d:\d\d(?: [A-Z]{2,5})? \d{4}\])\s?)?",
            r"(?:\[\s*[TC]\d+\]\s?)?",
            r"(?:<\d>\s?)?",
        )),
        stamp_anywhere: re(r"\[\s*\d+\.\d{6}\]\s?(?:\[\s*[TC]\d+\]\s?)?"),
        frame: re(concat!(
            r"^\s*(?:\[<[0-9a-fA-F]+>\]\s+)?(\?\s+)?(?:\[<[0-9a-fA-F]+>\]\s+)?(\?\s+)?",
            r"([A-Za-z_.$][A-Za-z0-9_.$]*)\+0x([0-9a-fA-F]+)/0x([0-9a-fA-F]+)",
            r"(?:\s+\[([A-Za-z0-9_\-]+)(?:\s+[0-9a-fA-F]+)?\])?(?:\s.*)?$",
        )),
        inline_frame: re(r"^\s*(\?\s+)?([A-Za-z_.$][A-Za-z0-9_.$]*) \S+:\d+ \[inline\]$"),
        target: re(concat!(
            r"^([A-Za-z_.$][A-Za-z0-9_.$]*)\+0x([0-9a-fA-F]+)/0x([0-9a-fA-F]+)",
            r"(?:\s+\[([A-Za-z0-9_\-]+)(?:\s+[0-9a-fA-F]+)?\])?",
        )),
        rip: re(r"^\s*(?:RIP|EIP|IP):\s*(?:([0-9a-fA-F]{4}):)?\s*(?:\[<[0-9a-fA-F]+>\]\s*)*(.*)$"),
        pc_lr: re(r"^\s*(pc|lr)\s*:\s*(?:\[<[0-9a-fA-F]+>\]\s*)?(.*)$"),
        pc_is_at: re(r"^\s*(PC|LR) is at (.*)$"),
        // kmemleak's `backtrace:` (6.6+: `backtrace (crc 5e3a9c2b):`) opens a trace too.
        call_trace: re(r"^\s*(?:Call [Tt]race|backtrace(?: \(crc [0-9a-f]+\))?):\s*$"),
        marker: re(r"^\s*<(/?)([A-Z#_]+)>\s*$"),
        regdump: re(REGDUMP),
        tail: RegexSet::new(TAIL_LINES).expect("tail patterns"),
        end_trace: gated(r"^-+\[ end trace"),
        end_panic: gated(r"^-+\[ end Kernel panic"),
        sanitizer_end: gated(r"^={20,}\s*$"),
        ignore_next_trace: re(r"RCU grace-period kthread stack dump:|Stack dump where RCU GP kthread last ran:"),
        cpu_line: gated(
            r"^CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (.+?)(?: Kdump: loaded)? (?:Not tainted|Tainted: ([A-Z ]+?)) +(\S+)(?: #|\s*$)",
        ),
        taint_line: gated(r"^\s+(?:Not tainted|Tainted: ([A-Z ]+?)) +(\S+)(?: #|\s*$)"),
        ident_line: gated(r"^(\d\S*) #\S+ (?:Not tainted|Tainted: ([A-Z ]+?))\s*$"),
        process_line: gated(r"^Process (.+?) \(pid: (\d+), stack limit"),
        task_line: gated(r"^task:(\S+)\s+state:.*?\bpid:\s*(\d+)"),
        access: re(r"^(Read|Write) (?:of size \d+|at addr)"),
        lock_at: re(&format!(r", at: {sym_re}\+0x")),
        symbol: re(r"^([A-Za-z_][A-Za-z0-9_.]*)(?:\+0x|\s|$)"),
        panic_tail: re(PANIC_TAIL),
        panic_normalize: PANIC_NORMALIZE.iter().map(|(r, w)| (re(r), *w)).collect(),
    }
}

/// The compiled patterns (built once).
pub(crate) fn get() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_patterns_compile() {
        let p = get();
        assert_eq!(p.header_res.len(), HEADERS.len());
    }

    /// The header set's lead (the starts a match can have) skips the lines a report is mostly
    /// made of. It is worked out only for a set whose every pattern is anchored.
    #[test]
    fn every_header_is_anchored_and_most_report_lines_cannot_start_one() {
        for d in HEADERS {
            assert!(d.re.starts_with('^'), "unanchored: {}", d.re);
        }
        let lead = &get().header_lead;
        for line in [
            "RIP: 0010:nfs_updatepage+0x2b5/0x960 [nfs]",
            "RAX: 0000000000000000 RBX: ffff888003b0e000 RCX: 0000000000000000",
            "Code: 48 89 df e8 6b",
            "Call Trace:",
            " <TASK>",
            " ? nfs_updatepage+0x2b5/0x960 [nfs]",
            "CPU: 0 PID: 55 Comm: dd Not tainted 6.1.0 #1",
            "Hardware name: QEMU Standard PC (i440FX + PIIX, 1996)",
            "Modules linked in: nfs lockd",
            "x29: ffff800008003e40 x28: ffff000003a9c000",
        ] {
            assert!(!lead.may_match(line), "{line:?}");
        }
        for line in [
            "BUG: kernel NULL pointer dereference, address: 0",
            "Oops: general protection fault",
        ] {
            assert!(lead.may_match(line), "{line:?}");
        }
    }

    /// A gate changes no answer: on every line of every fixture log, cleaned as the detector
    /// cleans it, a gated pattern matches exactly when its regex alone does, and no line the
    /// header set matches is one its lead skips.
    #[test]
    fn the_gates_skip_only_lines_their_patterns_cannot_match() {
        let p = get();
        let gated = [
            &p.end_trace,
            &p.end_panic,
            &p.sanitizer_end,
            &p.cpu_line,
            &p.taint_line,
            &p.ident_line,
            &p.process_line,
            &p.task_line,
        ];
        let plain: Vec<Regex> = gated.iter().map(|g| re(g.as_str())).collect();
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let (mut lines, mut headers) = (0, 0);
        for e in std::fs::read_dir(data).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            for raw in bytes.split(|b| *b == b'\n') {
                let text = crate::line::clean(raw);
                for t in [text.as_str(), text.trim_start()] {
                    lines += 1;
                    if p.headers.is_match(t) {
                        headers += 1;
                        assert!(p.header_lead.may_match(t), "{t:?}");
                    }
                    for (g, r) in gated.iter().zip(&plain) {
                        assert_eq!(g.is_match(t), r.is_match(t), "{} on {t:?}", r.as_str());
                    }
                }
            }
        }
        assert!(lines > 1000 && headers > 50, "{lines} lines, {headers} headers");
    }

    #[test]
    fn tables() {
        assert!(in_table(SKIP_GENERIC, "_raw_spin_lock_irqsave"));
        assert!(in_table(SKIP_GENERIC, "do_raw_spin_lock"));
        assert!(!in_table(SKIP_GENERIC, "sysrq_handle_crash"));
        assert!(!in_table(SKIP_GENERIC, "nfs_updatepage"));
        assert!(in_table(SKIP_SCHED, "schedule_timeout"));
        assert!(!in_table(SKIP_SCHED, "synchronize_rcu"));
    }
}
