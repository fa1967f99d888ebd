/* SPDX-License-Identifier: Apache-2.0 */
/* The host-side budgets without a VM (issue 16): the network's and the
 * jail's setup and teardown, as run.c does them, repeated in this process.
 * Prints one JSON object: per stage the median wall time and the mean CPU
 * time (user + sys, this process and its reaped children), which a loaded
 * machine inflates far less than wall time. bench.py runs it in a network
 * namespace of its own (network) and counts its syscalls with strace.
 *
 *   ctrj-hostbench net [--runs N] [--firewall auto|nft|iptables-nft|iptables-legacy]
 *                      [--ports N]
 *   ctrj-hostbench jail [--runs N] [--vmm PATH]
 */
#include "jail/jail.h"
#include "net/net.h"
#include "util/spawn.h"
#include "util/undo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 1000

struct sample {
	double wall_ms, cpu_ms;
};

struct stage {
	const char *name;
	struct sample s[MAX_RUNS];
	size_t n;
};

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double tv_ms(struct timeval t)
{
	return t.tv_sec * 1e3 + t.tv_usec / 1e3;
}

static double cpu_ms(void)
{
	struct rusage self, kids;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	return tv_ms(self.ru_utime) + tv_ms(self.ru_stime) + tv_ms(kids.ru_utime) +
	       tv_ms(kids.ru_stime);
}

static void begin(struct sample *s)
{
	s->cpu_ms = cpu_ms();
	s->wall_ms = now_ms();
}

static void end(struct stage *st, struct sample *s)
{
	s->wall_ms = now_ms() - s->wall_ms;
	s->cpu_ms = cpu_ms() - s->cpu_ms;
	if (st->n < MAX_RUNS)
		st->s[st->n++] = *s;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const struct stage *st, bool last)
{
	double w[MAX_RUNS], c[MAX_RUNS], sum = 0;

	for (size_t i = 0; i < st->n; i++) {
		w[i] = st->s[i].wall_ms;
		c[i] = st->s[i].cpu_ms;
		sum += c[i];
	}
	qsort(w, st->n, sizeof *w, cmp);
	qsort(c, st->n, sizeof *c, cmp);
	printf("  \"%s_wall_ms\": %.3f,\n  \"%s_cpu_ms\": %.3f,\n  \"%s_cpu_ms_mean\": %.3f%s\n",
	       st->name, st->n ? w[st->n / 2] : 0, st->name, st->n ? c[st->n / 2] : 0, st->name,
	       st->n ? sum / st->n : 0, last ? "" : ",");
}

static void report_pair(const struct stage *setup, const struct stage *down)
{
	printf("{\n");
	report(setup, false);
	report(down, true);
	printf("}\n");
}

static int no_save(void *ctx, struct cj_err *err)
{
	return 0;
}

static int teardown(json_object *log)
{
	static const struct cj_undo_kind kinds[] = {
	    {"net", cj_net_undo}, {"jail", cj_jail_undo}, {NULL, NULL}};
	return cj_undo_replay(log, kinds, false);
}

/* Untimed: the teardown left the TAP's removal (and the grace periods it
 * and the nftables table's deletion wait for) to a process of its own
 * (cj_tap_end_detached). A run's next setup comes a VM's life later; here
 * the next one would otherwise wait for those grace periods itself. */
static void settle(const char *tap)
{
	for (int i = 0; i < 2000 && tap[0] && cj_nl_link_index(tap) > 0; i++)
		usleep(1000);
	usleep(50000);
}

static int bench_net(int runs, enum cj_firewall fw, size_t nports)
{
	static struct stage setup = {.name = "net_setup"}, down = {.name = "net_teardown"};
	struct cj_net_spec spec = {.mode = CJ_NET_TAP, .firewall = fw, .ndns = 1};
	struct cj_net net;

	spec.dns[0] = htonl(0xc0000202);
	for (size_t i = 0; i < nports && i < CJ_MAX_PORTS; i++)
		spec.ports[spec.nports++] = (struct cj_port){.host_port = (uint16_t)(18000 + i),
		                                             .guest_port = (uint16_t)(80 + i)};
	for (int i = 0; i < runs; i++) {
		struct cj_undo undo = {.log = json_object_new_array(), .save = no_save};
		struct cj_err err = {0};
		struct sample s;
		char id[16], msg[1200];

		snprintf(id, sizeof id, "b%08x%03d", (unsigned)getpid(), i % 1000);
		begin(&s);
		int r = cj_net_setup(&spec, id, "/nonexistent", 0, &undo, &net, &err);
		end(&setup, &s);
		begin(&s);
		int left = teardown(undo.log);
		end(&down, &s);
		json_object_put(undo.log);
		settle(net.tap);
		if (r < 0 || left) {
			fprintf(stderr, "ctrj-hostbench: %s (%d undo entries left)\n",
			        r < 0 ? cj_err_str(&err, msg, sizeof msg) : "teardown", left);
			return 1;
		}
	}
	report_pair(&setup, &down);
	return 0;
}

static int enter(void *ctx, const char **what)
{
	if (cj_jail_enter(ctx, NULL, 0, what) < 0)
		return -1;
	_exit(0); /* the jail is up: what follows is the VMM's own start */
}

static int attach(void *ctx, pid_t pid, struct cj_err *err)
{
	return cj_jail_attach(ctx, pid, err);
}

static int jail_once(const char *vmm, struct stage *setup, struct stage *down, struct cj_err *err)
{
	static struct cj_jail jail;
	struct cj_jail_spec spec = {0};
	struct cj_jail_plan plan;
	struct cj_undo undo = {.log = json_object_new_array(), .save = no_save};
	char dir[] = "/tmp/ctrj-hostbench.XXXXXX", *argv[] = {(char *)vmm, NULL};
	char step[CJ_SPAWN_STEP_MAX];
	struct sample s;
	int r = -1, status;
	pid_t pid;

	if (!mkdtemp(dir) || cj_jail_resolve(&spec, 256, &plan, err) < 0 ||
	    cj_jail_pick_ids(&spec, NULL, 0, &plan, err) < 0 ||
	    cj_jail_plan_add(&plan, CJ_JAIL_KERNEL, "kernel", "/etc/hostname", -1, false, err) <
	        0 ||
	    cj_jail_plan_add(&plan, CJ_JAIL_INITRD, "initrd", "/etc/hostname", -1, false, err) < 0)
		goto out;
	begin(&s);
	struct cj_spawn sp = {.path = vmm,
	                      .argv = argv,
	                      .stdin_fd = -1,
	                      .new_session = true,
	                      .clone_flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC |
	                                     CLONE_NEWUTS | CLONE_NEWNET,
	                      .on_fork = attach,
	                      .pre_exec = enter,
	                      .ctx = &jail};
	if (cj_jail_prepare(&plan, dir, "hostbench", vmm, &undo, &jail, err) < 0 ||
	    (pid = cj_spawn(&sp, step, err)) < 0)
		goto out;
	cj_jail_binds_done(&jail);
	waitpid(pid, &status, 0);
	end(setup, &s);
	r = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : cj_fail(err, 0, "jail failed");
out:
	begin(&s);
	int left = teardown(undo.log);
	cj_jail_cleanup(&jail);
	rmdir(dir);
	end(down, &s);
	json_object_put(undo.log);
	return r < 0 || left ? -1 : 0;
}

static int bench_jail(int runs, const char *vmm)
{
	static struct stage setup = {.name = "jail_setup"}, down = {.name = "jail_teardown"};

	for (int i = 0; i < runs; i++) {
		struct cj_err err = {0};
		char msg[1200];
		if (jail_once(vmm, &setup, &down, &err) < 0) {
			fprintf(stderr, "ctrj-hostbench: %s\n", cj_err_str(&err, msg, sizeof msg));
			return 1;
		}
	}
	report_pair(&setup, &down);
	return 0;
}

int main(int argc, char **argv)
{
	int runs = 20;
	size_t ports = 0;
	enum cj_firewall fw = CJ_FW_AUTO;
	const char *vmm = "/usr/bin/qemu-system-x86_64";

	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--runs") == 0)
			runs = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--ports") == 0)
			ports = (size_t)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--vmm") == 0)
			vmm = argv[i + 1];
		else if (strcmp(argv[i], "--firewall") == 0)
			fw = strcmp(argv[i + 1], "iptables-legacy") == 0 ? CJ_FW_IPTABLES_LEGACY
			     : strcmp(argv[i + 1], "iptables-nft") == 0  ? CJ_FW_IPTABLES_NFT
			     : strcmp(argv[i + 1], "nft") == 0           ? CJ_FW_NFT
			                                                 : CJ_FW_AUTO;
	}
	if (runs < 1 || runs > MAX_RUNS)
		runs = 20;
	if (argc > 1 && strcmp(argv[1], "net") == 0)
		return bench_net(runs, fw, ports);
	if (argc > 1 && strcmp(argv[1], "jail") == 0)
		return bench_jail(runs, vmm);
	fprintf(stderr, "usage: ctrj-hostbench net|jail [--runs N] [--firewall F] [--ports N] "
	                "[--vmm PATH]\n");
	return 2;
}
