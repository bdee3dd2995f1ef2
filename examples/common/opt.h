/* SPDX-License-Identifier: MIT */
/*
 * opt.h - strict numeric options for the examples: the whole argument must
 * be a number (decimal or 0x) from min to max, else a message naming the
 * option and the accepted range, and exit status 2. "-5" is not taken as
 * 4 billion, "3,x" not as 3.
 */
#ifndef IOPF_EXAMPLES_OPT_H
#define IOPF_EXAMPLES_OPT_H

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static inline unsigned long opt_num(const char *prog, const char *opt,
				    const char *arg, unsigned long min,
				    unsigned long max)
{
	unsigned long v = 0;
	char *end = NULL;

	errno = 0;
	if (arg && isdigit((unsigned char)*arg))
		v = strtoul(arg, &end, 0);
	if (!end || *end || errno || v < min || v > max) {
		fprintf(stderr, "%s: %s '%s': expected a number from %lu to %lu\n",
			prog, opt, arg ? arg : "", min, max);
		exit(2);
	}
	return v;
}

#endif
