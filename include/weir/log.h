/*
 * log.h - the one logging module.  Messages go to stderr, lowercase, no
 * full stop, names quoted as '%s'.  The level is checked before the
 * arguments are formatted.
 */
#ifndef WEIR_LOG_H
#define WEIR_LOG_H

enum weir_loglevel { WEIR_LOG_ERR, WEIR_LOG_WARN, WEIR_LOG_INFO, WEIR_LOG_DEBUG };

extern int	weir_log_level;
void		weir_log_init(const char *progname, int level);
void		weir_log(int level, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
void		weir_fatalx(const char *fmt, ...)
		    __attribute__((format(printf, 1, 2), noreturn));

#define log_err(...)	weir_log(WEIR_LOG_ERR, __VA_ARGS__)
#define log_warn(...)	do { if (weir_log_level >= WEIR_LOG_WARN) \
	weir_log(WEIR_LOG_WARN, __VA_ARGS__); } while (0)
#define log_info(...)	do { if (weir_log_level >= WEIR_LOG_INFO) \
	weir_log(WEIR_LOG_INFO, __VA_ARGS__); } while (0)
#define log_debug(...)	do { if (weir_log_level >= WEIR_LOG_DEBUG) \
	weir_log(WEIR_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
