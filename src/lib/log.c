#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir/err.h"
#include "weir/log.h"

int		 weir_log_level = WEIR_LOG_WARN;
static const char *log_prog = "weir";

void
weir_log_init(const char *progname, int level)
{
	log_prog = progname;
	weir_log_level = level;
}

static void
vlog(int level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warning", "info",
	    "debug" };
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "%s: %s: %s\n", log_prog, names[level], line);
}

void
weir_log(int level, const char *fmt, ...)
{
	va_list ap;

	if (level > weir_log_level)
		return;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

void
weir_fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(WEIR_LOG_ERR, fmt, ap);
	va_end(ap);
	exit(70);
}

const char *
weir_strerror(int code)
{
	if (code < 0)
		code = -code;
	switch (code) {
	case 0:			return "success";
	case WEIR_EFORMAT:	return "malformed input";
	case WEIR_ETRUNC:	return "truncated input";
	case WEIR_ECONFIG:	return "bad configuration";
	case WEIR_EPOLICY:	return "refused by node policy";
	case WEIR_EUNSUPP:	return "not supported";
	case WEIR_EOF:		return "end of input";
	default:		return strerror(code);
	}
}

int
weir_seterr(struct weir_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}
