/* SPDX-License-Identifier: MIT */
/* check_main.c - the one runner gathering every unit suite (as libnl). */
#include <stdlib.h>

#include "testutil.h"

int main(void)
{
	SRunner *sr = srunner_create(suite_fake());
	int failed;

	srunner_add_suite(sr, suite_opts());
	srunner_add_suite(sr, suite_faultq());
	srunner_add_suite(sr, suite_batch());
	srunner_add_suite(sr, suite_handles());
	srunner_add_suite(sr, suite_producer());
	srunner_add_suite(sr, suite_dispatch());
	srunner_add_suite(sr, suite_device());
	srunner_add_suite(sr, suite_once());
	srunner_add_suite(sr, suite_sched());
	srunner_add_suite(sr, suite_probe());
	srunner_add_suite(sr, suite_record());
	srunner_add_suite(sr, suite_veventq());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
