#include <stdio.h>
#include <string.h>

#include "weir/pkt.h"

int
weir_iface_add(struct weir_ifaces *t, unsigned input, uint16_t linktype,
    uint32_t snaplen, uint8_t tsresol, const char *name)
{
	struct weir_iface *f;

	if (t->n >= WEIR_MAX_IFACES)
		return -1;
	f = &t->v[t->n];
	memset(f, 0, sizeof(*f));
	f->linktype = linktype;
	f->snaplen = snaplen;
	f->tsresol = tsresol;
	f->input = (uint8_t)input;
	snprintf(f->name, sizeof(f->name), "%s", name ? name : "");
	return (int)t->n++;
}
