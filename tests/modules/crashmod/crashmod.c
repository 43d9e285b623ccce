// SPDX-License-Identifier: GPL-2.0
/*
 * crashmod: crashes the running kernel in a chosen way when loaded, so that repro's oops parser
 * is tested on real console output from real kernels (x86_64 and arm64).
 *
 *   insmod crashmod.ko mode=null|paging|gpf|warn|bug|list|softlockup|rcustall|panic
 *
 * and, on a kernel with the debug checks (`debug_checks = true`, kernels/linux-6.1-debug.toml),
 * one mode per report family of those checkers:
 *
 *   uaf-read uaf-write oob double-free          KASAN
 *   shift                                       UBSAN
 *   unlock-imbalance inversion nonstatic        lockdep
 *   held-freed rcu-deref wq-leak
 *   atomic-sleep                                DEBUG_ATOMIC_SLEEP
 *   percpu                                      DEBUG_PREEMPT
 *   refcount                                    refcount_t saturation
 *   odebug                                      DEBUG_OBJECTS
 *   leak                                        kmemleak (after `echo scan` to its debugfs file)
 *   hang                                        the hung-task detector
 *   div                                         a division by zero (x86 traps; arm64 does not)
 *
 * Each mode has its own noinline function, so the crash's title names it.
 */
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/preempt.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/timer.h>
#include <linux/workqueue.h>

static char *mode = "null";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "how to crash");

static unsigned int seconds = 12;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "how long softlockup and rcustall spin");

struct crash_item {
	int value;
	struct list_head node;
};

/* Read through a pointer the compiler cannot prove NULL. */
static int *volatile crash_ptr;

static noinline int crash_null(void)
{
	return *crash_ptr;
}

static noinline int crash_paging(void)
{
	/* An unmapped user address, touched from kernel mode. */
	crash_ptr = (int *)0x1000000UL;
	return *crash_ptr;
}

static noinline int crash_gpf(void)
{
	/* A non-canonical address on x86_64; a translation fault on arm64. */
	crash_ptr = (int *)0xdead000000000100UL;
	return *crash_ptr;
}

static noinline int crash_warn(void)
{
	WARN_ON(mode[0] == 'w');
	return 0;
}

static noinline int crash_bug(void)
{
	BUG_ON(mode[0] == 'b');
	return 0;
}

static noinline int crash_list(void)
{
	static LIST_HEAD(head);
	struct crash_item *a = kzalloc(sizeof(*a), GFP_KERNEL);

	if (!a)
		return -ENOMEM;
	list_add(&a->node, &head);
	/* Adding the same entry twice: CONFIG_DEBUG_LIST reports the corruption. */
	list_add(&a->node, &head);
	return 0;
}

static noinline int crash_softlockup(void)
{
	unsigned long end = jiffies + seconds * HZ;

	preempt_disable();
	while (time_before(jiffies, end))
		cpu_relax();
	preempt_enable();
	return 0;
}

static noinline int crash_rcustall(void)
{
	unsigned long end = jiffies + seconds * HZ;

	rcu_read_lock();
	preempt_disable();
	while (time_before(jiffies, end))
		cpu_relax();
	preempt_enable();
	rcu_read_unlock();
	return 0;
}

/*
 * The debug checkers' families. A pointer laundered through a volatile variable keeps the
 * compiler from proving (and warning about) what each mode does on purpose.
 */
static char *volatile crash_mem;
static volatile int crash_int;

static noinline char *crash_alloc(size_t size)
{
	crash_mem = kmalloc(size, GFP_KERNEL);
	return crash_mem;
}

static noinline int crash_uaf_read(void)
{
	char *p = crash_alloc(64);

	if (!p)
		return -ENOMEM;
	kfree(p);
	return crash_mem[8];
}

static noinline int crash_uaf_write(void)
{
	char *p = crash_alloc(64);

	if (!p)
		return -ENOMEM;
	kfree(p);
	crash_mem[8] = 1;
	return 0;
}

static noinline int crash_oob(void)
{
	char *p = crash_alloc(64);
	int v;

	if (!p)
		return -ENOMEM;
	v = crash_mem[64 + crash_int];
	kfree(p);
	return v;
}

static noinline int crash_double_free(void)
{
	char *p = crash_alloc(64);

	if (!p)
		return -ENOMEM;
	kfree(p);
	kfree(crash_mem);
	return 0;
}

static noinline int crash_shift(void)
{
	crash_int = 40;
	return 1 << crash_int;
}

static DEFINE_MUTEX(crash_mutex_a);
static DEFINE_MUTEX(crash_mutex_b);

static noinline int crash_unlock_imbalance(void)
{
	/* Released without being held. */
	mutex_unlock(&crash_mutex_a);
	return 0;
}

static noinline int crash_inversion(void)
{
	/* A then B, then B then A: lockdep sees the cycle without a deadlock happening. */
	mutex_lock(&crash_mutex_a);
	mutex_lock(&crash_mutex_b);
	mutex_unlock(&crash_mutex_b);
	mutex_unlock(&crash_mutex_a);
	mutex_lock(&crash_mutex_b);
	mutex_lock(&crash_mutex_a);
	mutex_unlock(&crash_mutex_a);
	mutex_unlock(&crash_mutex_b);
	return 0;
}

struct crash_locked {
	spinlock_t spin;
	struct mutex mutex;
	struct timer_list timer;
};

static noinline int crash_nonstatic(void)
{
	struct crash_locked *l = kzalloc(sizeof(*l), GFP_KERNEL);

	if (!l)
		return -ENOMEM;
	/* A lock in allocated memory that spin_lock_init never saw has no lockdep key. */
	spin_lock(&l->spin);
	spin_unlock(&l->spin);
	kfree(l);
	return 0;
}

static noinline int crash_held_freed(void)
{
	struct crash_locked *l = kzalloc(sizeof(*l), GFP_KERNEL);

	if (!l)
		return -ENOMEM;
	mutex_init(&l->mutex);
	mutex_lock(&l->mutex);
	kfree(l);
	return 0;
}

struct crash_rcu_data {
	int value;
};
static struct crash_rcu_data __rcu *crash_rcu_ptr;
static struct crash_rcu_data crash_rcu_value = { .value = 1 };

static noinline int crash_unprotected_deref(void)
{
	RCU_INIT_POINTER(crash_rcu_ptr, &crash_rcu_value);
	/* Outside rcu_read_lock(): PROVE_RCU reports the dereference. */
	return rcu_dereference(crash_rcu_ptr)->value;
}

static void crash_wq_fn(struct work_struct *work)
{
	/* Returns with the lock held: the workqueue reports what its work item leaked. */
	mutex_lock(&crash_mutex_b);
}
static DECLARE_WORK(crash_work, crash_wq_fn);

static noinline int crash_wq_leak(void)
{
	schedule_work(&crash_work);
	flush_work(&crash_work);
	return 0;
}

static DEFINE_SPINLOCK(crash_spin);

static noinline int crash_atomic_sleep(void)
{
	spin_lock(&crash_spin);
	/* mutex_lock may sleep, and sleeping is not allowed under a spinlock. */
	mutex_lock(&crash_mutex_a);
	mutex_unlock(&crash_mutex_a);
	spin_unlock(&crash_spin);
	return 0;
}

static DEFINE_PER_CPU(int, crash_counter);

static noinline int crash_percpu(void)
{
	/* A per-CPU read from preemptible code, which may migrate between CPUs. */
	return __this_cpu_read(crash_counter);
}

static noinline int crash_refcount(void)
{
	refcount_t r = REFCOUNT_INIT(0);

	/* A put of a reference nobody holds: the counter underflows. */
	return refcount_dec_and_test(&r);
}

static void crash_timer_fn(struct timer_list *t)
{
}

static noinline int crash_odebug(void)
{
	struct crash_locked *l = kzalloc(sizeof(*l), GFP_KERNEL);

	if (!l)
		return -ENOMEM;
	timer_setup(&l->timer, crash_timer_fn, 0);
	mod_timer(&l->timer, jiffies + 3600 * HZ);
	/* Freed while the timer is armed: debug objects catches the free of an active object. */
	kfree(l);
	return 0;
}

static void crash_leak(struct work_struct *work)
{
	/*
	 * Allocated here and forgotten: kmemleak's next scans find no reference to it. In a work
	 * item, whose worker's stack the next work items overwrite, so no stale copy of the
	 * pointer stays behind on a stack (insmod's, cached after it exits, kept it on arm64).
	 */
	crash_mem = kmalloc(128, GFP_KERNEL);
	crash_mem = NULL;
}
static DECLARE_WORK(crash_leak_work, crash_leak);

static noinline int crash_leak_queue(void)
{
	schedule_work(&crash_leak_work);
	flush_work(&crash_leak_work);
	return 0;
}

static DECLARE_COMPLETION(crash_never);

static noinline int crash_hang(void)
{
	/* Blocks insmod uninterruptibly for good: the hung-task detector reports it. */
	wait_for_completion(&crash_never);
	return 0;
}

static noinline int crash_div(void)
{
	crash_int = 0;
	return 100 / crash_int;
}

static noinline int crash_panic(void)
{
	panic("crashmod: mode=%s", mode);
	return 0;
}

static int (*const crashes[])(void) = {
	crash_null, crash_paging, crash_gpf, crash_warn, crash_bug,
	crash_list, crash_softlockup, crash_rcustall, crash_panic,
	crash_uaf_read, crash_uaf_write, crash_oob, crash_double_free,
	crash_shift, crash_unlock_imbalance, crash_inversion, crash_nonstatic,
	crash_held_freed, crash_unprotected_deref, crash_wq_leak, crash_atomic_sleep,
	crash_percpu, crash_refcount, crash_odebug, crash_leak_queue,
	crash_hang, crash_div,
};
static const char *const names[] = {
	"null", "paging", "gpf", "warn", "bug",
	"list", "softlockup", "rcustall", "panic",
	"uaf-read", "uaf-write", "oob", "double-free",
	"shift", "unlock-imbalance", "inversion", "nonstatic",
	"held-freed", "rcu-deref", "wq-leak", "atomic-sleep",
	"percpu", "refcount", "odebug", "leak",
	"hang", "div",
};

static int __init crashmod_init(void)
{
	int i, ret;

	BUILD_BUG_ON(ARRAY_SIZE(names) != ARRAY_SIZE(crashes));
	pr_info("crashmod: mode=%s\n", mode);
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		if (!strcmp(mode, names[i])) {
			ret = crashes[i]();
			/* Not a tail call: crashmod_init stays in the trace. */
			pr_info("crashmod: mode=%s returned %d\n", mode, ret);
			return ret;
		}
	}
	pr_err("crashmod: unknown mode %s\n", mode);
	return -EINVAL;
}

static void __exit crashmod_exit(void)
{
}

module_init(crashmod_init);
module_exit(crashmod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("repro test module: crashes the kernel on purpose");
