/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Control-disk protocol: the only contract between the host runtime and the
 * guest init. Host and guest both compile protocol/ctl.c; nothing else is
 * shared. The guest treats the config as trusted-but-bounded input (the host
 * wrote it), the host treats the status record as hostile input (the guest
 * may be compromised by the time it writes it).
 *
 * Disk layout (all integers little-endian):
 *   [0, 512)                         header
 *   [CONFIG_OFF, CONFIG_OFF+MAX)     config records, wiped by the init after reading
 *   [STATUS_OFF, STATUS_OFF+4096)    status record, written by the init at the end
 */
#ifndef CTRJ_PROTOCOL_H
#define CTRJ_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTRJ_CTL_MAGIC        "CTRJCTL1"
#define CTRJ_STATUS_MAGIC     "CTRJSTA1"
#define CTRJ_PROTOCOL_VERSION 1u

/* Boot snapshots: the init (ctrj.snap=1) says this line on the console,
 * then waits for "go" (guest/resume.c). */
#define CTRJ_SNAPSHOT_POINT "ctrj-snapshot-point"

/* The word on a QEMU guest's kernel command line: the init may count on
 * QEMU's ways (a device its driver lets go of is reset; zero pages are
 * saved as flags; the exit device below). */
#define CTRJ_CMDLINE_QEMU "ctrj.vmm=qemu"

/* QEMU's isa-debug-exit device at this port: once the status is written and every disk flushed, the
 * init writes CTRJ_EXIT_VALUE there instead of going through the kernel's reboot, and QEMU exits at
 * once with status (value << 1) | 1, which QEMU never uses for a failure of its own. */
#define CTRJ_EXIT_PORT        0xf4
#define CTRJ_EXIT_VALUE       0x31
#define CTRJ_EXIT_QEMU_STATUS ((CTRJ_EXIT_VALUE << 1) | 1)

#define CTRJ_CTL_HEADER_SIZE 512u
#define CTRJ_CTL_CONFIG_OFF  4096u
#define CTRJ_CTL_CONFIG_MAX  (1024u * 1024u)
#define CTRJ_CTL_STATUS_OFF  (CTRJ_CTL_CONFIG_OFF + CTRJ_CTL_CONFIG_MAX)
#define CTRJ_CTL_STATUS_SIZE 4096u
#define CTRJ_CTL_DISK_SIZE   (CTRJ_CTL_STATUS_OFF + CTRJ_CTL_STATUS_SIZE)

/* Bounds enforced by both encoder and parser. */
#define CTRJ_MAX_ARGS        4096u
#define CTRJ_MAX_ENV         4096u
#define CTRJ_MAX_STRING      (256u * 1024u)
#define CTRJ_STATUS_MSG_MAX  480u
#define CTRJ_MAX_VOLUMES     16u
#define CTRJ_MAX_LAYERS      16u /* layers above the base */
#define CTRJ_MAX_SECRETS     64u
#define CTRJ_MAX_SECRET_NAME 128u

#define CTRJ_VOLUME_READONLY 0x1u
#define CTRJ_MAX_MOUNTS      32u
#define CTRJ_MAX_MOUNT_TAG   36u

/* A filesystem the init mounts that is no drive: a host directory shared
 * with virtiofs (found by its tag) or a tmpfs. */
enum ctrj_mount_kind {
	CTRJ_MOUNT_VIRTIOFS = 1,
	CTRJ_MOUNT_TMPFS = 2,
};
#define CTRJ_MOUNT_READONLY 0x1u
#define CTRJ_MOUNT_NOEXEC   0x2u
#define CTRJ_MOUNT_NOSUID   0x4u
#define CTRJ_MOUNT_NODEV    0x8u
#define CTRJ_MOUNT_FLAGS    0xfu

struct ctrj_mount {
	uint32_t kind;  /* enum ctrj_mount_kind */
	uint32_t flags; /* CTRJ_MOUNT_* */
	uint64_t size;  /* tmpfs: bytes, 0 = the kernel's default */
	uint32_t mode;  /* tmpfs: its root's mode, 0 = 01777 */
	char *tag;      /* virtiofs: the device's tag; NULL for a tmpfs */
	char *path;     /* absolute path in the guest */
};

/* A file bound over another after the network's files are written (the
 * engine's /etc/hosts, /etc/resolv.conf, /etc/hostname): src lies in a
 * host directory shared read-only (a CTRJ_REC_MOUNT), which the init
 * detaches once its files are bound, so that only they are seen. */
#define CTRJ_MAX_BIND_FILES 8u
struct ctrj_bind_file {
	char *src; /* absolute, in a shared directory's mount */
	char *dst; /* absolute; made (empty) when missing */
};

/* A filesystem drive the init mounts at path (found by its ext4 UUID). */
struct ctrj_volume {
	uint8_t uuid[16];
	uint32_t flags;
	char *path; /* absolute path in the guest */
};

#define CTRJ_MAX_DNS 3u

/* eth0 of the guest; addresses in network byte order. */
struct ctrj_net {
	uint32_t addr;
	uint32_t gateway;
	uint32_t prefix;
	uint32_t mtu;
	uint32_t ndns;
	uint32_t dns[CTRJ_MAX_DNS];
};

/* A secret delivered as /run/secrets/<name>: never exported, never in
 * /var/environment, wiped from the control disk after reading. */
struct ctrj_secret {
	char *name; /* [A-Za-z0-9_.-], not "." or ".." */
	uint8_t *value;
	size_t len;
};

/* Record types. Bit 15 set = the guest must understand it or refuse. */
enum ctrj_rec_type {
	CTRJ_REC_ARG = 0x8001,
	CTRJ_REC_ENV = 0x8002,
	CTRJ_REC_WORKDIR = 0x8003,
	CTRJ_REC_USER = 0x8004,
	CTRJ_REC_HOSTNAME = 0x0005,
	CTRJ_REC_GRACE_MS = 0x0006,
	CTRJ_REC_BASE_UUID = 0x8007,
	CTRJ_REC_MODULES_UUID = 0x0008,
	CTRJ_REC_UPPER_SIZE = 0x0009,
	CTRJ_REC_STOP_SIGNAL = 0x000a,
	CTRJ_REC_VOLUME = 0x800b, /* uuid[16] flags:le32 path */
	CTRJ_REC_SECRET = 0x800c, /* name_len:le16 name value */
	CTRJ_REC_NET = 0x800d,    /* struct ctrj_net, 32 bytes */
	CTRJ_REC_STDIO = 0x8010,  /* flags:le32 rows:le16 cols:le16 (CTRJ_STDIO_*) */
	/* OCI runtime mode (0x58-0x6f): the init waits, its agent open, for the
	 * host's RELEASE (ctrj/agent.h) before it starts the workload (empty) */
	CTRJ_REC_HOLD = 0x8058,
	/* kind:le32 flags:le32 size:le64 mode:le32 tag_len:le16 tag path */
	CTRJ_REC_MOUNT = 0x8038,
	CTRJ_REC_READONLY_ROOT = 0x8039, /* empty: the root is mounted read-only */
	/* uuid[16] of a read-only layer stacked above the base, one record a
	 * layer, lowest first (range 0x28-0x37: image layers) */
	CTRJ_REC_LAYER = 0x8028,
	/* the workload's privileges and limits (struct ctrj_proc, range
	 * 0x60-0x67): payloads as CTRJ_PROC_REC_* below */
	CTRJ_REC_CAPS = 0x8060,
	CTRJ_REC_RLIMIT = 0x8061,
	CTRJ_REC_GROUPS = 0x8062,
	CTRJ_REC_PROC_FLAGS = 0x8063,
	CTRJ_REC_PIDS_LIMIT = 0x8064, /* le64: the guest's pids cgroup for the workload */
	CTRJ_REC_BIND_FILE = 0x8065,  /* src_len:le16 src dst (struct ctrj_bind_file) */
};

/* A process's privileges and limits (config.json's process, applied in
 * the guest as defence in depth): the workload's on the control disk,
 * an exec's in its START (ctrj/agent.h). Both carry the same payloads:
 *   CAPS       bounding effective permitted inheritable ambient, le64 each
 *   RLIMIT     resource:le32 soft:le64 hard:le64 (one record a resource)
 *   GROUPS     gid:le32 ... (the supplementary groups, replacing the
 *              user's from the image's /etc/group)
 *   PROC_FLAGS flags:le32 (CTRJ_PROC_NO_NEW_PRIVS, CTRJ_PROC_OOM)
 *              oom_score_adj:le32 (signed) */
enum ctrj_proc_rec {
	CTRJ_PROC_REC_CAPS = 1,
	CTRJ_PROC_REC_RLIMIT = 2,
	CTRJ_PROC_REC_GROUPS = 3,
	CTRJ_PROC_REC_FLAGS = 4,
};
#define CTRJ_MAX_GROUPS        64u
#define CTRJ_MAX_RLIMITS       16u  /* resources 0-15 (RLIM_NLIMITS) */
#define CTRJ_PROC_CAPS         0x1u /* the five sets replace root's */
#define CTRJ_PROC_GROUPS       0x2u /* groups replace the user's */
#define CTRJ_PROC_NO_NEW_PRIVS 0x4u
#define CTRJ_PROC_OOM          0x8u /* oom_score_adj is set */
#define CTRJ_PROC_WIRE_FLAGS   (CTRJ_PROC_NO_NEW_PRIVS | CTRJ_PROC_OOM)

struct ctrj_rlimit {
	uint32_t resource;
	uint64_t soft, hard; /* UINT64_MAX: unlimited */
};

struct ctrj_proc {
	uint32_t flags; /* CTRJ_PROC_*; 0: nothing to apply */
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	int32_t oom_score_adj; /* -1000..1000 */
	uint32_t ngroups;
	uint32_t groups[CTRJ_MAX_GROUPS];
	uint32_t nrlimits;
	struct ctrj_rlimit rlimits[CTRJ_MAX_RLIMITS];
};

/* The records of p: put(ctx, type, payload, len) for each, in order;
 * a protocol numbers them consecutively in enum ctrj_proc_rec's order,
 * from first (type = first + kind - 1). Returns 0 or put's first nonzero
 * value. */
int ctrj_proc_encode(const struct ctrj_proc *p, uint16_t first,
                     int (*put)(void *ctx, uint16_t type, const void *v, size_t n), void *ctx);
/* One record into p, checked (bounds, no duplicate); 0 or -1 with err. */
int ctrj_proc_parse(struct ctrj_proc *p, enum ctrj_proc_rec kind, const uint8_t *v, size_t n,
                    char *err, size_t errlen);
/* Would the parser take p (the encoder's check)? */
bool ctrj_proc_valid(const struct ctrj_proc *p);

/* The workload's stdio (CTRJ_REC_STDIO): without the record it is the
 * console's (stdin /dev/null); with it, the agent channel's session
 * CTRJ_AGENT_MAIN_SESSION (ctrj/agent.h) carries its streams. */
#define CTRJ_STDIO_AGENT  0x1u /* stdout and stderr on the agent channel */
#define CTRJ_STDIO_STDIN  0x2u /* stdin from the host (-i); else /dev/null */
#define CTRJ_STDIO_TTY    0x4u /* a terminal of rows x cols (-t) */
#define CTRJ_STDIO_ALL    0x7u
#define CTRJ_REC_CRITICAL 0x8000u

/* Parsed (guest) or to-be-encoded (host) configuration. */
struct ctrj_config {
	char **argv; /* NULL-terminated, argc entries */
	size_t argc;
	char **envp; /* NULL-terminated "KEY=VALUE" */
	size_t envc;
	char *workdir;  /* NULL: image default ("/") */
	char *user;     /* NULL: root; "name", "uid", "uid:gid", "name:group" */
	char *hostname; /* NULL: keep kernel default */
	uint32_t grace_ms;
	uint32_t stop_signal; /* 0: SIGTERM */
	uint64_t upper_size;  /* bytes for the ephemeral upper layer, 0 = default */
	bool has_base_uuid;
	bool has_modules_uuid;
	uint8_t base_uuid[16];
	uint8_t modules_uuid[16];
	uint8_t layer_uuids[CTRJ_MAX_LAYERS][16]; /* above the base, lowest first */
	size_t nlayers;
	struct ctrj_volume *volumes;
	size_t nvolumes;
	struct ctrj_secret *secrets;
	size_t nsecrets;
	bool has_net;
	struct ctrj_net net;
	bool hold;                 /* CTRJ_REC_HOLD: start the workload on the agent's RELEASE */
	struct ctrj_mount *mounts; /* mounted after the volumes, in order */
	size_t nmounts;
	bool readonly_root;   /* no writable root; /tmp a tmpfs unless mounted */
	uint32_t stdio_flags; /* CTRJ_STDIO_*; 0: the console */
	uint16_t tty_rows, tty_cols;
	struct ctrj_proc proc; /* the workload's privileges and limits */
	uint64_t pids_limit;   /* 0: none */
	struct ctrj_bind_file binds[CTRJ_MAX_BIND_FILES];
	size_t nbinds;
};

/* Is name acceptable as a secret file name? */
bool ctrj_secret_name_valid(const char *name, size_t len);

/* Header at offset 0 of the control disk. */
struct ctrj_ctl_header {
	char magic[8];
	uint32_t version;
	uint32_t config_off;
	uint32_t config_len;
	uint32_t status_off;
};

enum ctrj_status_state {
	CTRJ_STATE_NONE = 0,
	CTRJ_STATE_EXITED = 1,      /* code = exit status */
	CTRJ_STATE_SIGNALED = 2,    /* signal = terminating signal */
	CTRJ_STATE_EXEC_FAILED = 3, /* code = 126 or 127 */
	CTRJ_STATE_INIT_FAILED = 4, /* setup before exec failed */
	CTRJ_STATE_MAX = 4,
};

/* Status record, written by the guest, parsed by the host. Times are the
 * guest's CLOCK_BOOTTIME in nanoseconds (0 = not reached). */
struct ctrj_status {
	uint32_t state;
	uint32_t code;
	uint32_t signal;
	uint64_t t_init_ns;    /* init entered */
	uint64_t t_modules_ns; /* time spent loading modules (a duration) */
	uint64_t t_workload_start_ns;
	uint64_t t_workload_end_ns;
	char msg[CTRJ_STATUS_MSG_MAX + 1]; /* NUL-terminated, printable ASCII only after parse */
};

/* Config records: encode (host) and parse (guest). Return 0 or -1 with a
 * message in err. Parse allocates; free with ctrj_config_free. */
int ctrj_config_encode(const struct ctrj_config *cfg, uint8_t **out, size_t *out_len, char *err,
                       size_t errlen);
int ctrj_config_parse(const uint8_t *buf, size_t len, struct ctrj_config *cfg, char *err,
                      size_t errlen);
void ctrj_config_free(struct ctrj_config *cfg);

/* Header: 512 bytes. */
void ctrj_header_encode(uint8_t out[CTRJ_CTL_HEADER_SIZE], uint32_t config_len);
int ctrj_header_parse(const uint8_t in[CTRJ_CTL_HEADER_SIZE], struct ctrj_ctl_header *hdr,
                      char *err, size_t errlen);

/* Status: CTRJ_CTL_STATUS_SIZE bytes. The parser rejects anything out of
 * range and replaces non-printable message bytes, so its output is safe to
 * print on the host's terminal. Returns 1 when a record is present, 0 when
 * the area holds no record (the guest never wrote one), -1 when malformed. */
void ctrj_status_encode(const struct ctrj_status *st, uint8_t out[CTRJ_CTL_STATUS_SIZE]);
int ctrj_status_parse(const uint8_t *in, size_t len, struct ctrj_status *st, char *err,
                      size_t errlen);

/* The exit code a process's end stands for, as a shell reports it: its exit
 * status, or 128+N for a death by signal N. The one place that computes it,
 * for the guest init (status record code) and the host (wait statuses). */
int ctrj_signal_code(int signo);
/* The same from a waitpid() status (a stopped status maps to 255). */
int ctrj_wait_code(int wstatus);

#endif
