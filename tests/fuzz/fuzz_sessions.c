/*
 * fuzz_sessions.c - the sessions output's control parser.  The input is
 * a control file (capstats commands, some timed "@SECONDS ..."); the
 * module reads it while 40 packets spread over 4 s of packet time go
 * through, so timed commands apply at interval boundaries.  Nothing may
 * crash, leak or hang; bad commands are refused, never fatal.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weir/module.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern const struct weir_module weir_mod_sessions;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t frame[54] = {
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00,
		0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1,
		10, 0, 0, 2, 0x04, 0xd2, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0,
		0x50, 0x02, 0x20, 0, 0, 0, 0, 0 };
	char ctl[] = "/tmp/weir-fz-ctl.XXXXXX", out[64], js[512];
	struct weir_pkt pk[40], *pp[40];
	struct weir_batch b = { pp, 0 };
	struct weir_ifaces ifs;
	struct weir_env env;
	struct weir_err err;
	uint8_t buf[40][16 + sizeof(frame)];
	json_t *conf;
	void *st = NULL;
	int fd, i;

	if ((fd = mkstemp(ctl)) < 0)
		return 0;
	if (size > 0 && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(ctl);
		return 0;
	}
	close(fd);
	snprintf(out, sizeof(out), "%s.out", ctl);
	snprintf(js, sizeof(js), "{\"sessions\": [{\"name\": \"web\", "
	    "\"expr\": \"tcp port 80\"}], \"path\": \"%s\", \"interval\": 1, "
	    "\"control\": \"%s\", \"cache_entries\": 64}", out, ctl);
	conf = json_loads(js, 0, NULL);
	memset(&ifs, 0, sizeof(ifs));
	weir_iface_add(&ifs, 0, 1, 262144, 6, "fuzz");
	memset(&env, 0, sizeof(env));
	env.exp_name = "fuzz";
	env.ifaces = &ifs;
	if (conf == NULL || weir_mod_sessions.check(conf, NULL, &err) < 0 ||
	    weir_mod_sessions.open(&st, conf, &env, &err) < 0)
		goto done;
	for (i = 0; i < 40; i++) {
		memcpy(buf[i] + 16, frame, sizeof(frame));
		memset(&pk[i], 0, sizeof(pk[i]));
		pk[i].data = buf[i] + 16;
		pk[i].caplen = pk[i].wirelen = sizeof(frame);
		pk[i].linktype = 1;
		pk[i].ts = 1700000000000000000ULL + (uint64_t)i * 100000000ULL;
		pp[i] = &pk[i];
	}
	for (i = 0; i < 40; i += 10) {
		b.p = pp + i;
		b.n = 10;
		weir_mod_sessions.packet(st, &b);
		if (weir_mod_sessions.tick != NULL)
			weir_mod_sessions.tick(st, pk[i + 9].ts);
	}
	weir_mod_sessions.close(st, &err);
done:
	json_decref(conf);
	unlink(ctl);
	unlink(out);
	return 0;
}
