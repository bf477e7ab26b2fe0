/*
 * test_pipeline.c - merge order and buffer lifetime, experiment checks
 * (stage order, unknown keys, policy rules).
 */
#include <stdlib.h>
#include <string.h>

#include "capture/pipeline.h"
#include "tests/tap.h"

/* A fake reader: yields ts values from a list, `chunk` per batch, and
 * scribbles over its previous batch on every refill (as a real reader's
 * buffer refill would), so a merge that refilled too early is caught. */
struct fake {
	const uint64_t	*ts;
	unsigned	 n, pos, chunk, refills;
};

static int
fake_next(struct weir_input *in, struct weir_pkt *pk, unsigned max)
{
	struct fake *f = in->priv;
	unsigned k;

	for (k = 0; k < WEIR_BATCH_MAX; k++)
		pk[k].ts = 0xdeadbeef;		/* invalidate the old batch */
	f->refills++;
	for (k = 0; k < f->chunk && k < max && f->pos < f->n; k++) {
		memset(&pk[k], 0, sizeof(pk[k]));
		pk[k].ts = f->ts[f->pos++];
		pk[k].iface = (uint16_t)in->index;
	}
	return (int)k;
}

static const struct weir_input_ops fake_ops = { .name = "fake",
	.next_batch = fake_next };

static void
test_merge(void)
{
	static const uint64_t a[] = { 1, 3, 5, 7, 9, 11, 13, 15 };
	static const uint64_t b[] = { 2, 3, 4, 10, 20, 21 };
	static const uint64_t c[] = { 0, 100 };
	struct weir_input in[3];
	struct fake f[3] = { { a, 8, 0, 3, 0 }, { b, 6, 0, 2, 0 },
	    { c, 2, 0, 1, 0 } };
	struct weir_merge m;
	struct weir_pkt *out[WEIR_BATCH_MAX];
	uint64_t prev = 0, seen = 0;
	unsigned n, i, total = 0, order_ok = 1, valid = 1, tie_ok = 1;
	int last_iface_at3 = -1;

	memset(in, 0, sizeof(in));
	for (i = 0; i < 3; i++) {
		in[i].ops = &fake_ops;
		in[i].priv = &f[i];
		in[i].index = i;
	}
	ok(weir_merge_init(&m, in, 3) == 0, "merge init");
	while ((n = weir_merge_next(&m, out, WEIR_BATCH_MAX)) > 0) {
		/* All pointers of a batch must still be valid here. */
		for (i = 0; i < n; i++) {
			if (out[i]->ts == 0xdeadbeef)
				valid = 0;
			if (out[i]->ts < prev)
				order_ok = 0;
			if (out[i]->ts == 3) {
				if (last_iface_at3 == -1 && out[i]->iface != 0)
					tie_ok = 0;
				last_iface_at3 = out[i]->iface;
			}
			prev = out[i]->ts;
			seen += out[i]->ts;
		}
		total += n;
	}
	ok(total == 16, "merge returns every packet (%u of 16)", total);
	ok(order_ok, "merged timestamps never go back");
	ok(valid, "no packet of a batch was overwritten by a refill");
	ok(tie_ok && last_iface_at3 == 1, "equal timestamps: lower input first");
	ok(seen == 64 + 60 + 100, "every timestamp once");
	weir_merge_free(&m);
}

static int
check_doc(const char *doc, const char *pol, char *msg, size_t len)
{
	json_t *exp = json_loads(doc, 0, NULL), *policy = NULL;
	struct weir_err err = { "" };
	int rc;

	if (pol != NULL)
		policy = json_loads(pol, 0, NULL);
	rc = weir_exp_check(exp, policy, &err);
	snprintf(msg, len, "%s", err.msg);
	json_decref(exp);
	json_decref(policy);
	return rc;
}

#define IO "\"inputs\":[{\"path\":\"x.pcap\"}],\"outputs\":[{\"type\":" \
	"\"pcap\",\"path\":\"o.pcap\"}]"

static void
test_check(void)
{
	char msg[512];
	int rc;

	rc = check_doc("{" IO ",\"stages\":[{\"type\":\"filter\","
	    "\"expr\":\"tcp\"},{\"type\":\"truncate\",\"snaplen\":64}]}",
	    NULL, msg, sizeof(msg));
	ok(rc == 0, "a good document passes (%s)", msg);

	rc = check_doc("{" IO ",\"stages\":[{\"type\":\"truncate\","
	    "\"snaplen\":64},{\"type\":\"filter\",\"expr\":\"tcp\"}]}",
	    NULL, msg, sizeof(msg));
	ok(rc == -WEIR_ECONFIG && strstr(msg, "'filter' must come before "
	    "'truncate'") != NULL, "truncate before filter is refused: %s",
	    msg);

	rc = check_doc("{" IO ",\"stagse\":[]}", NULL, msg, sizeof(msg));
	ok(rc == -WEIR_ECONFIG && strstr(msg, "'stagse'") != NULL,
	    "unknown top-level key is named: %s", msg);

	rc = check_doc("{" IO ",\"stages\":[{\"type\":\"frobnicate\"}]}",
	    NULL, msg, sizeof(msg));
	ok(rc == -WEIR_ECONFIG && strstr(msg, "'frobnicate'") != NULL,
	    "unknown stage type is named: %s", msg);

	rc = check_doc("{\"outputs\":[{\"type\":\"pcap\",\"path\":\"o\"}]}",
	    NULL, msg, sizeof(msg));
	ok(rc == -WEIR_ECONFIG && strstr(msg, "no input") != NULL,
	    "missing input is refused: %s", msg);

	rc = check_doc("{" IO "}", "{\"require_anonymization\":true}", msg,
	    sizeof(msg));
	ok(rc == -WEIR_EPOLICY && strstr(msg, "'require_anonymization'"),
	    "policy: anonymization required: %s", msg);

	rc = check_doc("{" IO "}", "{\"allowed_outputs\":[\"counters\"]}",
	    msg, sizeof(msg));
	ok(rc == -WEIR_EPOLICY && strstr(msg, "'allowed_outputs'"),
	    "policy: output type not allowed: %s", msg);

	rc = check_doc("{" IO ",\"stages\":[{\"type\":\"truncate\","
	    "\"snaplen\":1500}]}", "{\"max_snaplen\":96}", msg, sizeof(msg));
	ok(rc < 0 && strstr(msg, "'max_snaplen'"),
	    "policy: snaplen above the cap is refused: %s", msg);

	rc = check_doc("{" IO "}", "{\"max_snaplen\":96}", msg, sizeof(msg));
	ok(rc == 0, "policy: a cap with no truncate stage is merged (%s)",
	    msg);

	rc = check_doc("{" IO "}", "{\"max_snaplen\":96,\"bogus\":1}", msg,
	    sizeof(msg));
	ok(rc == -WEIR_ECONFIG && strstr(msg, "'bogus'"),
	    "policy: unknown rule is named: %s", msg);
}

int
main(void)
{
	test_merge();
	test_check();
	return tap_done();
}
