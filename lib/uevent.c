/* SPDX-License-Identifier: MIT */
/*
 * uevent.c - parse one kernel uevent message, trusting nothing in it.
 *
 * The kernel sends "ACTION@DEVPATH\0" followed by "KEY=VALUE\0" fields,
 * among them ACTION, DEVPATH and SEQNUM (lib/kobject_uevent.c). Anything
 * else - a truncated buffer, an unterminated or empty field, a header that
 * disagrees with its fields, udev's own "libudev" format - is refused.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define UEVENT_MAX 8192 /* the kernel's buffer is 2048 bytes */

static int parse_seqnum(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -EBADMSG;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -EBADMSG;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* Set *slot to the field's value unless it was set already. */
static int take(const char **slot, const char *val)
{
	if (*slot)
		return -EBADMSG;
	*slot = val;
	return 0;
}

int iopf__uevent_parse(const char *buf, size_t len, struct uevent *ev)
{
	const char *p = buf, *end, *at, *seq = NULL;
	size_t hlen;

	memset(ev, 0, sizeof(*ev));
	/* Every field, the last one too, ends in a NUL inside the buffer. */
	if (!buf || len < 2 || len > UEVENT_MAX || buf[len - 1] != '\0')
		return -EBADMSG;
	end = buf + len;
	hlen = strlen(p);
	at = memchr(p, '@', hlen);
	if (!at || at == p || at[1] != '/')
		return -EBADMSG; /* also refuses "libudev\0" */

	for (p += hlen + 1; p < end; p += strlen(p) + 1) {
		const char *eq = strchr(p, '=');
		int rc = 0;

		if (!eq || eq == p)
			return -EBADMSG; /* empty field or no key */
		if (!strncmp(p, "ACTION=", 7))
			rc = take(&ev->action, eq + 1);
		else if (!strncmp(p, "DEVPATH=", 8))
			rc = take(&ev->devpath, eq + 1);
		else if (!strncmp(p, "SUBSYSTEM=", 10))
			rc = take(&ev->subsystem, eq + 1);
		else if (!strncmp(p, "SEQNUM=", 7))
			rc = take(&seq, eq + 1);
		else if (!strncmp(p, "SYNTH_UUID=", 11))
			ev->synthetic = true; /* written to a uevent file */
		if (rc)
			return rc;
	}
	if (!ev->action || !ev->devpath || !seq ||
	    parse_seqnum(seq, &ev->seqnum))
		return -EBADMSG;
	/* The header must say what the fields say. */
	if (strlen(ev->action) != (size_t)(at - buf) ||
	    strncmp(ev->action, buf, (size_t)(at - buf)) ||
	    strcmp(ev->devpath, at + 1))
		return -EBADMSG;
	return 0;
}
