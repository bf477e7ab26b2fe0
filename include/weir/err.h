/*
 * err.h - one return convention for all of libweir.
 *
 * Functions return 0 (or a count) on success and a negative value on
 * failure: either -errno or one of the -WEIR_E* codes below.  Codes are
 * above 4096 so they never collide with errno values.  Text for humans
 * travels separately, in a caller-supplied struct weir_err.
 */
#ifndef WEIR_ERR_H
#define WEIR_ERR_H

#include <stddef.h>

enum {
	WEIR_EFORMAT = 4096,	/* malformed input file or record */
	WEIR_ETRUNC,		/* input ends in the middle of a record */
	WEIR_ECONFIG,		/* bad configuration */
	WEIR_EPOLICY,		/* configuration breaks the node policy */
	WEIR_EUNSUPP,		/* valid but not supported (link type...) */
	WEIR_EOF,		/* end of input: not an error */
	WEIR_EMAX
};

/* An error message buffer handed down by the caller. */
struct weir_err {
	char	msg[512];
};

const char	*weir_strerror(int code);
/* Format into err->msg (if err is non-NULL); returns code unchanged. */
int		 weir_seterr(struct weir_err *err, int code, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));

#endif
