/*
 * bench_filefloor - the kernel's floor for the per-flow pcap output:
 * create N files holding B bytes in all in one directory, the way
 * flowpcap publishes them (O_TMPFILE, one write, linkat(AT_EMPTY_PATH),
 * close), with T threads, and print the wall time in seconds.
 *
 *	bench_filefloor DIR NFILES BYTES [THREADS] [MODE]
 *
 * MODE "tmpfile" (default, crash-safe as flowpcap) or "direct"
 * (O_CREAT|O_EXCL under the final name, one write, close: not
 * crash-safe, for comparison).  No packet is read or parsed: this is
 * what creating the files alone costs on this machine and filesystem,
 * a lower bound for any per-flow writer with the same file count.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct job {
	int		 dfd;
	unsigned	 first, n;
	size_t		 size;
	int		 direct;
	int		 err;
};

static char *buf;

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void *
run(void *arg)
{
	struct job *j = arg;
	char name[64];
	unsigned i;
	int fd;

	for (i = j->first; i < j->first + j->n; i++) {
		/* A UUID-sized name, as flowpcap's. */
		snprintf(name, sizeof(name),
		    "%08x-0000-7000-8000-%012u.pcap",
		    (unsigned)(i * 2654435761u), i);
		if (j->direct)
			fd = openat(j->dfd, name,
			    O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		else
			fd = openat(j->dfd, ".", O_TMPFILE | O_WRONLY |
			    O_CLOEXEC, 0644);
		if (fd < 0 ||
		    write(fd, buf, j->size) != (ssize_t)j->size ||
		    (!j->direct &&
		    linkat(fd, "", j->dfd, name, AT_EMPTY_PATH) < 0)) {
			j->err = errno;
			if (fd >= 0)
				close(fd);
			return NULL;
		}
		close(fd);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	struct job jobs[16];
	pthread_t th[16];
	unsigned long nfiles, nth = 2, k;
	unsigned long long bytes;
	int dfd, direct = 0;
	double t0, t1;

	if (argc < 4) {
		fprintf(stderr, "usage: bench_filefloor DIR NFILES BYTES "
		    "[THREADS] [tmpfile|direct]\n");
		return 2;
	}
	nfiles = strtoul(argv[2], NULL, 10);
	bytes = strtoull(argv[3], NULL, 10);
	if (argc > 4)
		nth = strtoul(argv[4], NULL, 10);
	if (argc > 5)
		direct = strcmp(argv[5], "direct") == 0;
	if (nfiles == 0 || nth == 0 || nth > 16) {
		fprintf(stderr, "bench_filefloor: bad NFILES or THREADS\n");
		return 2;
	}
	if (mkdir(argv[1], 0755) < 0 && errno != EEXIST) {
		perror(argv[1]);
		return 1;
	}
	if ((dfd = open(argv[1], O_PATH | O_DIRECTORY)) < 0) {
		perror(argv[1]);
		return 1;
	}
	if ((buf = calloc(1, bytes / nfiles + 1)) == NULL)
		return 1;
	for (k = 0; k < nth; k++) {
		jobs[k].dfd = dfd;
		jobs[k].first = (unsigned)(nfiles * k / nth);
		jobs[k].n = (unsigned)(nfiles * (k + 1) / nth) - jobs[k].first;
		jobs[k].size = bytes / nfiles;
		jobs[k].direct = direct;
		jobs[k].err = 0;
	}
	t0 = now();
	for (k = 0; k < nth; k++)
		pthread_create(&th[k], NULL, run, &jobs[k]);
	for (k = 0; k < nth; k++)
		pthread_join(th[k], NULL);
	t1 = now();
	for (k = 0; k < nth; k++)
		if (jobs[k].err) {
			fprintf(stderr, "bench_filefloor: %s\n",
			    strerror(jobs[k].err));
			return 1;
		}
	printf("%.6f\n", t1 - t0);
	return 0;
}
