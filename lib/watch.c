/* SPDX-License-Identifier: MIT */
/*
 * watch.c - the kernel uevent socket, on libnl-3: opened on the first
 * iopf_ctx_watch_device(), part of the context's epoll set, read in the
 * dispatch round before answers are written (an answer for a removed
 * device must not reach a cookie the kernel may have handed out again).
 * Built without libnl-3 (-DIOPF_WITH_LIBNL=OFF), watching is refused.
 */
#include <errno.h>

#include "internal.h"

#ifdef IOPF_HAVE_LIBNL
#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define UEVENT_GROUP_KERNEL 1 /* group 2 is udev's re-broadcast */
#define UEVENT_RCVBUF (1 << 20)
#define UEVENT_READS_PER_ROUND 64

int iopf__watch_open(struct iopf_ctx *ctx)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = IOPF_TAG_UEVENT };
	struct nl_sock *sk = nl_socket_alloc();
	int err;

	if (!sk)
		return -ENOMEM;
	nl_socket_disable_seq_check(sk); /* events, not replies */
	nl_socket_enable_msg_peek(sk);   /* whole messages, whatever size */
	errno = 0;
	if (nl_connect(sk, NETLINK_KOBJECT_UEVENT) < 0 ||
	    nl_socket_add_membership(sk, UEVENT_GROUP_KERNEL) < 0 ||
	    nl_socket_set_nonblocking(sk) < 0) {
		err = errno ? -errno : -EIO;
		goto fail;
	}
	/* Best effort: a burst of uevents (many devices at once) must not
	 * overflow it; if it does anyway, watch_read rescans sysfs. */
	nl_socket_set_buffer_size(sk, UEVENT_RCVBUF, 0);
	if (epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, nl_socket_get_fd(sk), &ev)) {
		err = -errno;
		goto fail;
	}
	ctx->watch = sk;
	return 0;
fail:
	nl_socket_free(sk);
	iopf__log(ctx, LOG_E, "cannot open the uevent socket: %s",
		  strerror(-err));
	return err;
}

void iopf__watch_close(struct iopf_ctx *ctx)
{
	if (!ctx->watch)
		return;
	nl_socket_free(ctx->watch); /* closes its fd: epoll forgets it */
	ctx->watch = NULL;
}

void iopf__watch_read(struct iopf_ctx *ctx, struct iopf_group **cancel)
{
	struct nl_sock *sk = ctx->watch;

	if (!sk)
		return;
	/* Level-triggered: what is left is read in the next round. */
	for (int i = 0; i < UEVENT_READS_PER_ROUND; i++) {
		struct sockaddr_nl from = { 0 };
		unsigned char *buf = NULL;
		int n;

		errno = 0;
		n = nl_recv(sk, &from, &buf, NULL);
		if (n > 0)
			iopf__uevent_process(ctx, (const char *)buf, (size_t)n,
					     from.nl_pid, cancel);
		free(buf);
		if (n > 0)
			continue;
		if (n < 0 && errno == ENOBUFS) {
			ctx->st.uevents_lost++;
			iopf__log(ctx, LOG_W,
				  "uevent socket overflowed: rescanning watched devices");
			iopf__devices_rescan(ctx, cancel);
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			iopf__log(ctx, LOG_E, "uevent socket: %s",
				  nl_geterror(n));
		break;
	}
}

#else /* !IOPF_HAVE_LIBNL */

int iopf__watch_open(struct iopf_ctx *ctx)
{
	iopf__log(ctx, LOG_W, "built without libnl-3: cannot watch devices");
	return -EOPNOTSUPP;
}

void iopf__watch_close(struct iopf_ctx *ctx)
{
}

void iopf__watch_read(struct iopf_ctx *ctx, struct iopf_group **cancel)
{
}

#endif
