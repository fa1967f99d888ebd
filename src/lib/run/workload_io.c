/* SPDX-License-Identifier: Apache-2.0 */
#include "workload_io.h"

#include "logfile.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Bytes written per write: at most what a pipe that polled writable takes
 * without blocking, so a slow reader never holds up the supervisor. */
#define WRITE_CHUNK 4096
#define WRITE_TURNS 16

static int queue(struct cj_workload_io *w, const uint8_t *f, size_t n)
{
	return n && ctrj_agent_buf_add(w->to_guest, f, n) == 0 ? 0 : -1;
}

static int give_credit(struct cj_workload_io *w, int which, size_t n)
{
	uint8_t f[32];

	if (n == 0)
		return 0;
	ctrj_agent_credit_grant(&w->data[which], (uint32_t)n);
	return queue(w, f,
	             ctrj_agent_enc_u32x2(
	                 f, CTRJ_AGENT_CREDIT, CTRJ_AGENT_MAIN_SESSION,
	                 which ? CTRJ_AGENT_STREAM_STDERR : CTRJ_AGENT_STREAM_STDOUT, (uint32_t)n));
}

bool cj_terminal_size(unsigned short *rows, unsigned short *cols)
{
	struct winsize ws;

	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
		return false;
	*rows = ws.ws_row;
	*cols = ws.ws_col;
	return true;
}

/* Raw mode as a terminal emulator's session wants it: every byte (Ctrl-C
 * too) goes to the guest's terminal, whose line discipline does the rest. */
static void make_raw(struct cj_workload_io *w)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &w->saved) < 0)
		return;
	t = w->saved;
	cfmakeraw(&t);
	if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0)
		w->raw = true;
}

void cj_workload_io_open(struct cj_workload_io *w, bool in, bool tty, struct cj_log *log,
                         bool log_only)
{
	*w = (struct cj_workload_io){.in_fd = in && !log_only ? STDIN_FILENO : -1,
	                             .tty = tty,
	                             .log = log,
	                             .log_only = log_only,
	                             .out_fd = {STDOUT_FILENO, STDERR_FILENO}};
	ctrj_agent_credit_init(&w->data[0]);
	ctrj_agent_credit_init(&w->data[1]);
	ctrj_agent_credit_init(&w->in);
	if (tty && !log_only)
		make_raw(w);
}

void cj_workload_io_close(struct cj_workload_io *w)
{
	if (w->raw)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &w->saved);
	w->raw = false;
	ctrj_agent_buf_free(&w->pend[0]);
	ctrj_agent_buf_free(&w->pend[1]);
	w->in_fd = -1;
}

/* Output of stream which: to the log at once (a detached run), else held
 * until our fd takes it; dropped, its credit returned, once that reader
 * went away. */
static int on_output(struct cj_workload_io *w, int which, const struct ctrj_agent_frame *f)
{
	if (f->len == 0)
		return 0; /* end of stream: the VM's end says the rest */
	if (ctrj_agent_credit_take(&w->data[which], f->len) < 0)
		return -1; /* past its credit */
	if (w->log)
		cj_log_write_stream(w->log, which ? CJ_LOG_STDERR : CJ_LOG_STDOUT,
		                    (const char *)f->payload, f->len);
	if (w->log_only || w->gone[which])
		return give_credit(w, which, f->len);
	return ctrj_agent_buf_add(&w->pend[which], f->payload, f->len);
}

int cj_workload_io_frame(struct cj_workload_io *w, const struct ctrj_agent_frame *f)
{
	switch (f->type) {
	case CTRJ_AGENT_STDOUT:
		return on_output(w, 0, f);
	case CTRJ_AGENT_STDERR:
		return on_output(w, 1, f);
	case CTRJ_AGENT_CREDIT:
		if (f->a != CTRJ_AGENT_STREAM_STDIN || f->b == 0)
			return -1;
		return ctrj_agent_credit_grant(&w->in, f->b);
	default:
		return 0; /* an exit status is not sent for it: the control disk has it */
	}
}

void cj_workload_io_pollfds(struct cj_workload_io *w, struct pollfd *p, bool read_stdin)
{
	bool in = read_stdin && w->in_fd >= 0 && ctrj_agent_credit_avail(&w->in) > 0;

	p[0] = (struct pollfd){.fd = in ? w->in_fd : -1, .events = POLLIN};
	for (int i = 0; i < 2; i++)
		p[1 + i] =
		    (struct pollfd){.fd = w->pend[i].len ? w->out_fd[i] : -1, .events = POLLOUT};
}

/* Write what stream which holds while its fd takes it; credit back. */
static void flush_output(struct cj_workload_io *w, int which)
{
	struct ctrj_agent_buf *b = &w->pend[which];
	size_t done = 0;

	for (int turn = 0; turn < WRITE_TURNS && b->len > done; turn++) {
		struct pollfd p = {.fd = w->out_fd[which], .events = POLLOUT};
		if (turn && poll(&p, 1, 0) != 1)
			break;
		size_t n = b->len - done < WRITE_CHUNK ? b->len - done : WRITE_CHUNK;
		ssize_t r = write(w->out_fd[which], b->p + done, n);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			break;
		if (r <= 0) { /* the reader is gone: the rest is dropped */
			w->gone[which] = true;
			done = b->len;
			break;
		}
		done += (size_t)r;
	}
	ctrj_agent_buf_drop(b, done);
	give_credit(w, which, done);
}

static void read_stdin(struct cj_workload_io *w)
{
	uint8_t f[CTRJ_AGENT_HDR_SIZE + CTRJ_AGENT_DATA_MAX];
	uint32_t n = ctrj_agent_credit_avail(&w->in);

	if (n > CTRJ_AGENT_DATA_MAX)
		n = CTRJ_AGENT_DATA_MAX;
	ssize_t r = read(w->in_fd, f + CTRJ_AGENT_HDR_SIZE, n);
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) { /* end of our stdin: the guest's ends too */
		w->in_fd = -1;
		queue(w, f,
		      ctrj_agent_enc_data(f, CTRJ_AGENT_STDIN_CLOSE, CTRJ_AGENT_MAIN_SESSION, NULL,
		                          0));
		return;
	}
	ctrj_agent_credit_take(&w->in, (uint32_t)r);
	queue(w, f,
	      ctrj_agent_enc_data(f, CTRJ_AGENT_STDIN, CTRJ_AGENT_MAIN_SESSION,
	                          f + CTRJ_AGENT_HDR_SIZE, (size_t)r));
}

void cj_workload_io_handle(struct cj_workload_io *w, const struct pollfd *p)
{
	if (p[0].fd >= 0 && p[0].revents)
		read_stdin(w);
	for (int i = 0; i < 2; i++)
		if (p[1 + i].fd >= 0 && p[1 + i].revents)
			flush_output(w, i);
}

int cj_workload_io_signal(struct cj_workload_io *w, int sig)
{
	uint8_t f[32];

	return queue(
	    w, f, ctrj_agent_enc_u32(f, CTRJ_AGENT_SIGNAL, CTRJ_AGENT_MAIN_SESSION, (uint32_t)sig));
}

int cj_workload_io_resize(struct cj_workload_io *w)
{
	unsigned short rows, cols;
	uint8_t f[32];

	if (!w->tty || !cj_terminal_size(&rows, &cols))
		return 0;
	return queue(w, f, ctrj_agent_enc_resize(f, CTRJ_AGENT_MAIN_SESSION, rows, cols));
}
