// SPDX-License-Identifier: GPL-2.0
/*
 * crashmod: crashes the running kernel in a chosen way when loaded, so that repro's oops parser
 * is tested on real console output from real kernels (x86_64 and arm64).
 *
 *   insmod crashmod.ko mode=null|paging|gpf|warn|bug|list|softlockup|rcustall|panic
 *
 * Each mode has its own noinline function, so the crash's title names it.
 */
#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>

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

static noinline int crash_panic(void)
{
	panic("crashmod: mode=%s", mode);
	return 0;
}

static int (*const crashes[])(void) = {
	crash_null, crash_paging, crash_gpf, crash_warn, crash_bug,
	crash_list, crash_softlockup, crash_rcustall, crash_panic,
};
static const char *const names[] = {
	"null", "paging", "gpf", "warn", "bug",
	"list", "softlockup", "rcustall", "panic",
};

static int __init crashmod_init(void)
{
	int i, ret;

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
