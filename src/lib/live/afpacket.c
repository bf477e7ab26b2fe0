/*
 * afpacket.c - live input: an AF_PACKET socket with a TPACKET_V3 receive
 * ring, used directly rather than through libpcap (docs/live.md says
 * why: we need the ring blocks themselves, zero-copy into the batch,
 * the block-release rule of input.h, and the raw counters).
 *
 * The ring is nblocks blocks of bsize bytes.  The kernel fills a block
 * with frames and hands it over (TP_STATUS_USER) when it is full or its
 * retire timer fires; we give it back (TP_STATUS_KERNEL) once every
 * packet of it has been handed out and the caller asks for the next
 * batch.  Blocks are used strictly in ring order, so the ones we hold
 * are the run [rel, cur], cur possibly partly read.
 *
 * Open order matters: the socket is created with protocol 0 (it receives
 * nothing), then the ring and the filter are set up, and only then is it
 * bound to the interface with ETH_P_ALL, so no packet of another
 * interface or one the filter rejects ever reaches the ring.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <linux/ethtool.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/net_tstamp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <net/if_arp.h>

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pcap/pcap.h>

#include "weir/live.h"
#include "weir/lossq.h"
#include "weir/log.h"
#include "lib/live/ring.h"

#ifndef ARPHRD_RAWIP
#define ARPHRD_RAWIP	519
#endif
#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING	23
#endif

#define NS		1000000000ull
#define FRAME_SIZE	2048	/* only for the ring request: V3 frames
				   are variable, packed in blocks */
#define VLAN_HLEN	4
#define BPF_ACCEPT	262144	/* what pcap_compile's programs return */
/* Margin past the retire timeout for a last block to reach us. */
#define DRAIN_SLACK_NS	(500ull * 1000000)
#define HORIZON_SLACK_NS (20ull * 1000000)


/* Linux 6.9; Debian 12's headers predate it. */
#ifndef PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define PACKET_FANOUT_FLAG_IGNORE_OUTGOING	0x4000
#endif

struct live {
	struct weir_live_conf conf;
	char		 ifname[IF_NAMESIZE];
	int		 ifindex;
	int		 arphrd;
	int		 iface;		/* index in the interface table */
	uint16_t	 linktype;
	int		 ether;		/* link layer is Ethernet */
	uint8_t		*map;
	size_t		 maplen;
	uint32_t	 bsize, nblocks;
	uint32_t	 cur;		/* block being read */
	uint32_t	 rel;		/* oldest block held */
	uint32_t	 nrel;		/* fully read blocks held */
	int		 open;		/* cur is parsed and held */
	struct live_block blk;
	uint32_t	 pk_i, pk_off;	/* next frame of cur */
	int		 sockerr;	/* pending socket error (positive) */
	uint64_t	 drain_end;	/* CLOCK_MONOTONIC deadline, ns */
	int		 drained;
	int		 fanout_id;	/* group joined, -1 = none */
	uint64_t	 start_ns;	/* frames stamped before: discarded,
					   counted (weir_live_set_start) */
	struct weir_live_stats st;
	/*
	 * Where the kernel's drops lie in the packet sequence: drops
	 * counted by a PACKET_STATISTICS read wait in lossq until the
	 * packets before them are handed out (weir_live_lost_before).
	 */
	struct weir_lossq lossq;
};

static int	live_next(struct weir_input *, struct weir_pkt *, unsigned);
static void	live_ops_close(struct weir_input *);

static int
live_probe(const uint8_t *m, size_t n)
{
	(void)m;
	(void)n;
	return 0;	/* never a file format */
}

static int
live_ops_open(struct weir_input *in)
{
	(void)in;
	return -WEIR_EUNSUPP;	/* opened by weir_live_open() only */
}

const struct weir_input_ops weir_live_afpacket = {
	.name		= "afpacket",
	.probe		= live_probe,
	.open		= live_ops_open,
	.next_batch	= live_next,
	.close		= live_ops_close,
};

void
weir_live_conf_defaults(struct weir_live_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->block_size = WEIR_LIVE_BLOCK_SIZE;
	c->blocks = WEIR_LIVE_BLOCKS;
	c->timeout_ms = WEIR_LIVE_TIMEOUT_MS;
	c->tstamp = WEIR_LIVE_TS_SOFTWARE;
	c->fanout = -1;
}

int
weir_live_is(const struct weir_input *in)
{
	return in->ops == &weir_live_afpacket && in->priv != NULL;
}

int
weir_live_fanout(const struct weir_input *in)
{
	return weir_live_is(in) ? ((const struct live *)in->priv)->fanout_id :
	    -1;
}

uint64_t
weir_live_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static uint64_t
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static int
lerr(struct weir_err *err, const struct live *l, int code, const char *what)
{
	return weir_seterr(err, code, "interface '%s': %s: %s", l->ifname,
	    what, strerror(-code));
}

/* ARPHRD -> LINKTYPE; 0 if we do not support it. */
static uint16_t
arphrd_linktype(int arphrd, int *ether)
{
	*ether = 0;
	switch (arphrd) {
	case ARPHRD_ETHER:
	case ARPHRD_LOOPBACK:	/* Linux lo carries Ethernet headers */
		*ether = 1;
		return WEIR_LT_EN10MB;
	case ARPHRD_NONE:	/* tun */
	case ARPHRD_RAWIP:
		return WEIR_LT_RAW;
	default:
		return 0;
	}
}

static int
lt_dlt(uint16_t linktype)
{
	return linktype == WEIR_LT_RAW ? DLT_RAW : DLT_EN10MB;
}

static int
attach(struct live *l, int fd, struct sock_filter *insn, unsigned n)
{
	struct sock_fprog fp;

	fp.len = (unsigned short)n;
	fp.filter = insn;
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof(fp)) < 0)
		return -errno;
	(void)l;
	return 0;
}

/*
 * The kernel program: for Ethernet, first "accept if the kernel took a
 * VLAN tag off" (libpcap's expression code would look for the tag in the
 * data, where it no longer is: user space decides on the re-inserted
 * packet), then the compiled expression with every accepting return
 * lowered to the snaplen if one is set.  Jumps are relative, so a
 * prefix does not move them.  Returns 1 attached, 0 not possible
 * (logged), or a negative code.
 */
static int
attach_expr(struct live *l, int fd, const char *expr, uint32_t snaplen)
{
	struct bpf_program prog;
	struct sock_filter *v = NULL;
	char ebuf[PCAP_ERRBUF_SIZE];
	pcap_t *pd;
	uint32_t acc = snaplen ? snaplen : BPF_ACCEPT;
	unsigned i, n = 0, pre;
	int rc;

	if ((pd = pcap_open_dead(lt_dlt(l->linktype), BPF_ACCEPT)) == NULL)
		return -ENOMEM;
	rc = pcap_compile(pd, &prog, expr, 1, 0);
	if (rc < 0) {
		/* the optimiser refuses programs that reject everything */
		snprintf(ebuf, sizeof(ebuf), "%s", pcap_geterr(pd));
		rc = pcap_compile(pd, &prog, expr, 0, 0);
	}
	pcap_close(pd);
	if (rc < 0) {
		log_info("interface '%s': filter '%s' does not compile for "
		    "its link type (%s): filtering in user space only",
		    l->ifname, expr, ebuf);
		return 0;
	}
	pre = l->ether ? 3 : 0;
	if (prog.bf_len + pre > BPF_MAXINSNS) {
		log_info("interface '%s': filter '%s' is too long for the "
		    "kernel (%u instructions): filtering in user space only",
		    l->ifname, expr, prog.bf_len);
		pcap_freecode(&prog);
		return 0;
	}
	v = calloc(prog.bf_len + pre, sizeof(*v));
	if (v == NULL) {
		pcap_freecode(&prog);
		return -ENOMEM;
	}
	if (pre) {
		v[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    (uint32_t)(SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT));
		v[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ |
		    BPF_K, 0, 1, 0);
		v[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, acc);
	}
	for (i = 0; i < prog.bf_len; i++) {
		const struct bpf_insn *p = &prog.bf_insns[i];

		v[n].code = p->code;
		v[n].jt = p->jt;
		v[n].jf = p->jf;
		v[n].k = p->k;
		if (BPF_CLASS(p->code) == BPF_RET && BPF_RVAL(p->code) ==
		    BPF_K && p->k != 0 && snaplen && p->k > snaplen)
			v[n].k = snaplen;
		n++;
	}
	pcap_freecode(&prog);
	rc = attach(l, fd, v, n);
	free(v);
	if (rc < 0) {
		log_info("interface '%s': the kernel refused filter '%s' (%s):"
		    " filtering in user space only", l->ifname, expr,
		    strerror(-rc));
		return 0;
	}
	return 1;
}

/*
 * Hardware timestamps: ask the driver what it offers (ETHTOOL_GET_TS_INFO),
 * switch on receive stamping of every packet (SIOCSHWTSTAMP, needs
 * CAP_NET_ADMIN) and tell the ring to use the raw hardware stamp.  Any
 * step failing falls back to software stamps, with a note.
 */
static void
hw_tstamp(struct live *l, int fd)
{
	struct ethtool_ts_info ti;
	struct hwtstamp_config hc;
	struct ifreq ifr;
	int v, lvl;
	const char *why;

	lvl = l->conf.tstamp == WEIR_LIVE_TS_HARDWARE ? WEIR_LOG_WARN :
	    WEIR_LOG_INFO;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", l->ifname);
	memset(&ti, 0, sizeof(ti));
	ti.cmd = ETHTOOL_GET_TS_INFO;
	ifr.ifr_data = (void *)&ti;
	if (ioctl(fd, SIOCETHTOOL, &ifr) < 0) {
		why = strerror(errno);
		goto fallback;
	}
	if (!(ti.so_timestamping & SOF_TIMESTAMPING_RAW_HARDWARE) ||
	    !(ti.rx_filters & (1u << HWTSTAMP_FILTER_ALL))) {
		why = "the driver offers no receive hardware timestamps";
		goto fallback;
	}
	memset(&hc, 0, sizeof(hc));
	hc.tx_type = HWTSTAMP_TX_OFF;
	hc.rx_filter = HWTSTAMP_FILTER_ALL;
	ifr.ifr_data = (void *)&hc;
	if (ioctl(fd, SIOCSHWTSTAMP, &ifr) < 0) {
		why = strerror(errno);
		goto fallback;
	}
	v = SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE;
	(void)setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &v, sizeof(v));
	v = SOF_TIMESTAMPING_RAW_HARDWARE;
	if (setsockopt(fd, SOL_PACKET, PACKET_TIMESTAMP, &v, sizeof(v)) < 0) {
		why = strerror(errno);
		goto fallback;
	}
	l->st.hw_timestamps = 1;
	return;
fallback:
	weir_log(lvl, "interface '%s': no hardware timestamps (%s): using "
	    "the kernel's software timestamps", l->ifname, why);
}

static int
check_conf(const struct weir_live_conf *c, const char *name,
    struct weir_err *err)
{
	long pg = sysconf(_SC_PAGESIZE);

	if (c->ifname == NULL || c->ifname[0] == '\0' ||
	    strlen(c->ifname) >= IF_NAMESIZE)
		return weir_seterr(err, -WEIR_ECONFIG, "interface '%s': "
		    "not a valid interface name", name);
	if (c->block_size < (uint32_t)pg || (c->block_size &
	    (c->block_size - 1)) != 0 || c->block_size > (1u << 30))
		return weir_seterr(err, -WEIR_ECONFIG, "interface '%s': "
		    "block size %u must be a power of two from %ld to 2^30",
		    name, c->block_size, pg);
	if (c->blocks < 2 || (uint64_t)c->blocks * c->block_size >
	    WEIR_LIVE_RING_MAX)
		return weir_seterr(err, -WEIR_ECONFIG, "interface '%s': "
		    "%u blocks: need 2 or more and at most 4 GiB in all",
		    name, c->blocks);
	if (c->timeout_ms < 1 || c->timeout_ms > 60000)
		return weir_seterr(err, -WEIR_ECONFIG, "interface '%s': "
		    "block timeout %u ms must be 1..60000", name,
		    c->timeout_ms);
	if (c->fanout > 65535 || (c->fanout < 0 && c->fanout != -1 &&
	    c->fanout != WEIR_LIVE_FANOUT_NEW))
		return weir_seterr(err, -WEIR_ECONFIG, "interface '%s': "
		    "fanout group %d must be 0..65535", name, c->fanout);
	return 0;
}

int
weir_live_open(struct weir_input *in, const struct weir_live_conf *c,
    unsigned index, struct weir_ifaces *ifaces, struct weir_err *err)
{
	struct tpacket_req3 req;
	struct sockaddr_ll sll;
	struct packet_mreq mr;
	struct ifreq ifr;
	struct live *l;
	int fd = -1, v, rc;

	memset(in, 0, sizeof(*in));
	in->fd = -1;
	in->index = index;
	in->ifaces = ifaces;
	snprintf(in->path, sizeof(in->path), "%s", c->ifname ? c->ifname :
	    "");
	if ((rc = check_conf(c, in->path, err)) < 0)
		return rc;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return weir_seterr(err, -ENOMEM, "out of memory");
	l->conf = *c;
	l->fanout_id = -1;
	l->conf.filter = NULL;		/* not kept: the caller owns it */
	snprintf(l->ifname, sizeof(l->ifname), "%s", c->ifname);
	l->bsize = c->block_size;
	l->nblocks = c->blocks;
	in->ops = &weir_live_afpacket;
	in->priv = l;

	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		weir_seterr(err, rc, "interface '%s': cannot open an AF_PACKET "
		    "socket: %s%s", l->ifname, strerror(errno),
		    errno == EPERM ? " (needs CAP_NET_RAW)" : "");
		goto fail;
	}
	in->fd = fd;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", l->ifname);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		rc = lerr(err, l, -errno, "no such interface");
		goto fail;
	}
	l->ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		rc = lerr(err, l, -errno, "cannot read its link type");
		goto fail;
	}
	l->arphrd = ifr.ifr_hwaddr.sa_family;
	if ((l->linktype = arphrd_linktype(l->arphrd, &l->ether)) == 0) {
		rc = weir_seterr(err, -WEIR_EUNSUPP, "interface '%s': link "
		    "type ARPHRD %d is not supported (Ethernet, loopback, "
		    "tun and raw IP are)", l->ifname, l->arphrd);
		goto fail;
	}

	v = TPACKET_V3;
	if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) < 0) {
		rc = lerr(err, l, -errno, "TPACKET_V3 not available");
		goto fail;
	}
	/* tcpdump semantics on lo: each packet once, as received. */
	if (l->arphrd == ARPHRD_LOOPBACK) {
		v = 1;
		if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &v,
		    sizeof(v)) < 0)
			log_warn("interface '%s': cannot ignore outgoing "
			    "packets (%s): each packet appears twice",
			    l->ifname, strerror(errno));
	}
	if (c->tstamp != WEIR_LIVE_TS_SOFTWARE)
		hw_tstamp(l, fd);

	memset(&req, 0, sizeof(req));
	req.tp_block_size = l->bsize;
	req.tp_block_nr = l->nblocks;
	req.tp_frame_size = FRAME_SIZE;
	req.tp_frame_nr = (l->bsize / FRAME_SIZE) * l->nblocks;
	req.tp_retire_blk_tov = c->timeout_ms;
	if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0) {
		rc = lerr(err, l, -errno, "cannot set up the receive ring");
		goto fail;
	}
	l->maplen = (size_t)l->bsize * l->nblocks;
	l->map = mmap(NULL, l->maplen, PROT_READ | PROT_WRITE, MAP_SHARED,
	    fd, 0);
	if (l->map == MAP_FAILED) {
		l->map = NULL;
		rc = lerr(err, l, -errno, "cannot map the receive ring");
		goto fail;
	}

	if (c->filter != NULL && c->filter[0] != '\0') {
		if ((rc = attach_expr(l, fd, c->filter, c->snaplen)) < 0) {
			rc = lerr(err, l, rc, "kernel filter");
			goto fail;
		}
		l->st.kernel_filter = rc;
	}
	if (!l->st.kernel_filter && c->snaplen) {
		struct sock_filter cut = BPF_STMT(BPF_RET | BPF_K, c->snaplen);

		if ((rc = attach(l, fd, &cut, 1)) < 0) {
			rc = lerr(err, l, rc, "kernel snaplen");
			goto fail;
		}
	}

	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = l->ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		rc = lerr(err, l, -errno, "cannot bind");
		goto fail;
	}
	if (c->promisc) {
		memset(&mr, 0, sizeof(mr));
		mr.mr_ifindex = l->ifindex;
		mr.mr_type = PACKET_MR_PROMISC;
		if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr,
		    sizeof(mr)) < 0) {
			rc = lerr(err, l, -errno, "cannot set promiscuous mode");
			goto fail;
		}
	}
	if (c->fanout >= 0 || c->fanout == WEIR_LIVE_FANOUT_NEW) {
		/*
		 * A new group: the kernel picks an id no group in this
		 * namespace has (UNIQUEID), so no foreign group is joined.
		 * No PACKET_FANOUT_FLAG_DEFRAG: with it the socket receives
		 * the reassembled datagram instead of the fragments on the
		 * wire, and an incomplete set not at all (docs/live.md).
		 */
		unsigned flags = PACKET_FANOUT_HASH;

		if (c->fanout < 0)
			flags |= PACKET_FANOUT_FLAG_UNIQUEID;
		/*
		 * On lo the group, not the member, decides whether outgoing
		 * packets are delivered (PACKET_IGNORE_OUTGOING above only
		 * covers a socket of its own): ask the group (Linux 6.9).
		 */
		if (l->arphrd == ARPHRD_LOOPBACK)
			flags |= PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
		v = (int)((c->fanout >= 0 ? (unsigned)c->fanout & 0xffffu :
		    0) | flags << 16);
		rc = setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &v,
		    sizeof(v)) < 0 ? -errno : 0;
		if (rc == -EINVAL &&
		    (flags & PACKET_FANOUT_FLAG_IGNORE_OUTGOING)) {
			log_warn("interface '%s': this kernel's fanout groups "
			    "cannot ignore outgoing packets: each packet "
			    "appears twice", l->ifname);
			v &= ~(int)(PACKET_FANOUT_FLAG_IGNORE_OUTGOING << 16);
			rc = setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &v,
			    sizeof(v)) < 0 ? -errno : 0;
		}
		if (rc < 0) {
			rc = lerr(err, l, rc, "cannot join fanout group");
			goto fail;
		}
		l->fanout_id = c->fanout;
		if (c->fanout < 0) {
			socklen_t vl = sizeof(v);

			if (getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &v,
			    &vl) < 0) {
				rc = lerr(err, l, -errno, "cannot read the "
				    "fanout group");
				goto fail;
			}
			l->fanout_id = v & 0xffff;
		}
	}
	l->iface = weir_iface_add(ifaces, index, l->linktype,
	    c->snaplen ? c->snaplen : BPF_ACCEPT, 9, l->ifname);
	if (l->iface < 0) {
		rc = weir_seterr(err, -WEIR_EUNSUPP, "interface '%s': more "
		    "than %d interfaces", l->ifname, WEIR_MAX_IFACES);
		goto fail;
	}
	log_info("interface '%s': ring of %u blocks of %u bytes, retire "
	    "timeout %u ms, link type %u%s%s", l->ifname, l->nblocks, l->bsize,
	    c->timeout_ms, l->linktype, l->st.kernel_filter ?
	    ", kernel filter" : "", c->promisc ? ", promiscuous" : "");
	return 0;
fail:
	weir_live_close(in);
	return rc;
}

static struct tpacket_block_desc *
block_at(const struct live *l, uint32_t i)
{
	return (struct tpacket_block_desc *)(void *)(l->map +
	    (size_t)i * l->bsize);
}

/* Give back every fully read block (they held the previous batch). */
static void
release(struct live *l)
{
	while (l->nrel > 0) {
		__atomic_store_n(&block_at(l, l->rel)->hdr.bh1.block_status,
		    TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		l->rel = (l->rel + 1) % l->nblocks;
		l->nrel--;
	}
}

static void
block_done(struct live *l)
{
	l->open = 0;
	l->nrel++;
	l->cur = (l->cur + 1) % l->nblocks;
}

/* Fill p from the checked frame f of block cur. */
static void
fill(struct live *l, struct weir_pkt *p, const struct live_frame *f)
{
	uint8_t *d = l->map + (size_t)l->cur * l->bsize + f->mac;
	uint32_t caplen = f->snaplen, wirelen = f->len;
	uint16_t tpid;

	/*
	 * Put back a tag the kernel took off (as tcpdump shows it): the
	 * two addresses move 4 bytes down into the frame's own header area.
	 */
	if (l->ether && (f->status & TP_STATUS_VLAN_VALID) && caplen >= 12) {
		tpid = (f->status & TP_STATUS_VLAN_TPID_VALID) && f->vlan_tpid ?
		    f->vlan_tpid : ETH_P_8021Q;
		memmove(d - VLAN_HLEN, d, 12);
		d -= VLAN_HLEN;
		d[12] = (uint8_t)(tpid >> 8);
		d[13] = (uint8_t)tpid;
		d[14] = (uint8_t)(f->vlan_tci >> 8);
		d[15] = (uint8_t)f->vlan_tci;
		caplen += VLAN_HLEN;
		wirelen += VLAN_HLEN;
		l->st.vlan_reinserted++;
	}
	if (f->status & TP_STATUS_TS_RAW_HARDWARE)
		l->st.ts_hardware++;
	if (f->status & TP_STATUS_CSUMNOTREADY)
		l->st.csum_notready++;
	memset(p, 0, offsetof(struct weir_pkt, dec));
	p->data = d;
	p->caplen = caplen;
	p->wirelen = wirelen;
	p->ts = (uint64_t)f->sec * NS + f->nsec;
	p->iface = (uint16_t)l->iface;
	p->linktype = l->linktype;
	if (f->pkttype == PACKET_OUTGOING) {
		p->dir = WEIR_DIR_OUT;
		p->epb_flags = 2;
	} else {
		p->dir = WEIR_DIR_IN;
		p->epb_flags = 1;
	}
}

/*
 * Place n drops just counted by PACKET_STATISTICS.  The kernel drops only
 * when every block is the reader's, and it marks each block it closes
 * while drops are unread TP_STATUS_LOSING.  So the drops lie after every
 * ready block closed before them (not LOSING) and before the first
 * LOSING one, or before the block the kernel is filling if none is:
 * count the packets still to be handed out up to there.  (A block the
 * kernel closes between the read and this scan can misplace them by
 * that block: a window of microseconds.)
 */
static void
loss_place(struct weir_input *in, struct live *l, uint64_t n)
{
	struct tpacket_block_desc *bd;
	struct live_block b;
	uint64_t pos = in->pkts;
	uint32_t i, j, status, avail;

	if (l->map == NULL || l->drained)
		goto put;
	if (l->open)
		pos += l->blk.num_pkts - l->pk_i;
	avail = l->nblocks - l->nrel - (l->open ? 1 : 0);
	j = l->open ? (l->cur + 1) % l->nblocks : l->cur;
	for (i = 0; i < avail; i++, j = (j + 1) % l->nblocks) {
		bd = block_at(l, j);
		status = __atomic_load_n(&bd->hdr.bh1.block_status,
		    __ATOMIC_ACQUIRE);
		if (!(status & TP_STATUS_USER) || (status & TP_STATUS_LOSING))
			break;
		if (live_block_parse((const uint8_t *)bd, l->bsize, &b) == 0)
			pos += b.num_pkts;
	}
put:
	weir_lossq_put(&l->lossq, pos, n);
}

int
weir_live_set_start(struct weir_input *in, uint64_t ns)
{
	struct live *l = in->priv;

	if (!weir_live_is(in))
		return -EINVAL;
	if (l->st.hw_timestamps)
		/* The NIC's clock is not the one ns comes from. */
		return -WEIR_EUNSUPP;
	l->start_ns = ns;
	return 0;
}

uint64_t
weir_live_lost_before(struct weir_input *in, uint64_t pos)
{
	struct live *l = in->priv;

	if (!weir_live_is(in))
		return 0;
	return weir_lossq_reached(&l->lossq, pos);
}

static int
live_next(struct weir_input *in, struct weir_pkt *pkts, unsigned max)
{
	struct live *l = in->priv;
	struct tpacket_block_desc *bd;
	struct live_frame f;
	uint32_t head, status;
	uint64_t stop_at;
	unsigned k = 0;

	if (l == NULL || l->map == NULL)
		return -EBADF;
	release(l);
	if (l->drained)
		return 0;
	if (l->sockerr)
		return weir_seterr(&in->err, -l->sockerr, "interface '%s': "
		    "capture stopped: %s", l->ifname, strerror(l->sockerr));
	stop_at = weir_lossq_next(&l->lossq, in->pkts);
	while (k < max) {
		/* A batch ends where drops lie: outputs see the boundary. */
		if (in->pkts + k == stop_at)
			break;
		if (!l->open) {
			if (l->nrel >= l->nblocks)
				break;	/* every block is held */
			bd = block_at(l, l->cur);
			status = __atomic_load_n(&bd->hdr.bh1.block_status,
			    __ATOMIC_ACQUIRE);
			if (!(status & TP_STATUS_USER))
				break;
			if ((status & TP_STATUS_LOSING) && !l->st.stopped) {
				/*
				 * The kernel dropped packets since the last
				 * PACKET_STATISTICS read and before this
				 * block: read them now, placing them here
				 * (a new batch starts with this block).
				 */
				if (k > 0)
					break;
				(void)weir_live_update(in);
				stop_at = weir_lossq_next(&l->lossq, in->pkts);
			}
			l->st.blocks++;
			if (live_block_parse((const uint8_t *)bd, l->bsize,
			    &l->blk) < 0) {
				l->st.bad_frames++;
				l->st.frames_skipped += l->blk.num_pkts;
				block_done(l);
				continue;
			}
			l->open = 1;
			l->pk_i = 0;
			l->pk_off = l->blk.first;
		}
		if (l->pk_i >= l->blk.num_pkts) {
			block_done(l);
			continue;
		}
		head = WEIR_HEADROOM + (l->ether ? VLAN_HLEN : 0);
		if (live_frame_parse(l->map + (size_t)l->cur * l->bsize,
		    &l->blk, l->pk_off, l->pk_i + 1 == l->blk.num_pkts, head,
		    &f) < 0) {
			l->st.bad_frames++;
			l->st.frames_skipped += l->blk.num_pkts - l->pk_i;
			block_done(l);
			continue;
		}
		if (l->start_ns != 0 &&
		    (uint64_t)f.sec * NS + f.nsec < l->start_ns) {
			l->st.before_start++;
			l->pk_i++;
			l->pk_off = f.next;
			continue;
		}
		fill(l, &pkts[k], &f);
		in->bytes += pkts[k].caplen;
		k++;
		l->pk_i++;
		l->pk_off = f.next;
	}
	in->pkts += k;
	if (k > 0)
		return (int)k;
	if (!l->st.stopped)
		return -EAGAIN;
	/* Stopped: done once every counted packet is out, or at the end. */
	if (l->st.kernel_received > l->st.kernel_dropped +
	    l->st.frames_skipped + l->st.before_start + in->pkts)
		(void)weir_live_update(in);
	if (l->st.kernel_received <= l->st.kernel_dropped +
	    l->st.frames_skipped + l->st.before_start + in->pkts ||
	    mono_now() >= l->drain_end) {
		l->drained = 1;
		return 0;
	}
	return -EAGAIN;
}

int
weir_live_wait(struct weir_input *const *v, unsigned n, int timeout_ms)
{
	struct pollfd pfd[WEIR_MAX_IFACES];
	struct live *l;
	unsigned i, m = 0, ready = 0;
	socklen_t sl;
	int rc, e;

	for (i = 0; i < n && m < WEIR_MAX_IFACES; i++) {
		if (!weir_live_is(v[i]))
			continue;
		l = v[i]->priv;
		if (l->open || l->drained || l->sockerr || (__atomic_load_n(
		    &block_at(l, l->cur)->hdr.bh1.block_status,
		    __ATOMIC_ACQUIRE) & TP_STATUS_USER))
			ready++;
		pfd[m].fd = v[i]->fd;
		pfd[m].events = POLLIN | POLLERR;
		pfd[m].revents = 0;
		m++;
	}
	if (ready > 0 || m == 0)
		return (int)ready;
	rc = poll(pfd, m, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0, m = 0; i < n && m < WEIR_MAX_IFACES; i++) {
		if (!weir_live_is(v[i]))
			continue;
		l = v[i]->priv;
		if (pfd[m].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			e = 0;
			sl = sizeof(e);
			if (getsockopt(v[i]->fd, SOL_SOCKET, SO_ERROR, &e,
			    &sl) == 0 && e != 0)
				l->sockerr = e;
			else if (pfd[m].revents & (POLLHUP | POLLNVAL))
				l->sockerr = ENETDOWN;
		}
		if (pfd[m].revents)
			ready++;
		m++;
	}
	return (int)ready;
}

int
weir_live_update(struct weir_input *in)
{
	struct live *l = in->priv;
	struct tpacket_stats_v3 ts;
	socklen_t len = sizeof(ts);

	if (!weir_live_is(in) || in->fd < 0)
		return -EBADF;
	memset(&ts, 0, sizeof(ts));
	if (getsockopt(in->fd, SOL_PACKET, PACKET_STATISTICS, &ts, &len) < 0)
		return -errno;
	l->st.kernel_received += ts.tp_packets;
	l->st.kernel_dropped += ts.tp_drops;
	if (ts.tp_drops > 0)
		loss_place(in, l, ts.tp_drops);
	l->st.kernel_freeze_q += ts.tp_freeze_q_cnt;
	return 0;
}

void
weir_live_stats(const struct weir_input *in, struct weir_live_stats *s)
{
	const struct live *l = in->priv;
	uint64_t out;

	memset(s, 0, sizeof(*s));
	if (!weir_live_is(in))
		return;
	*s = l->st;
	out = s->kernel_dropped + s->frames_skipped + s->before_start +
	    in->pkts;
	s->ring_unread = s->stopped && s->kernel_received > out ?
	    s->kernel_received - out : 0;
}

int
weir_live_stop(struct weir_input *in)
{
	struct live *l = in->priv;
	struct sock_filter none = BPF_STMT(BPF_RET | BPF_K, 0);
	int rc;

	if (!weir_live_is(in))
		return -EBADF;
	if (l->st.stopped)
		return 0;
	l->st.stopped = 1;
	l->drain_end = mono_now() + (uint64_t)l->conf.timeout_ms * 1000000 +
	    DRAIN_SLACK_NS;
	if ((rc = attach(l, in->fd, &none, 1)) < 0)
		log_warn("interface '%s': cannot stop the ring: %s",
		    l->ifname, strerror(-rc));
	return weir_live_update(in);
}

uint64_t
weir_live_horizon(const struct weir_input *in, uint64_t now)
{
	const struct live *l = in->priv;
	uint64_t back;

	if (!weir_live_is(in))
		return now;
	back = 2 * (uint64_t)l->conf.timeout_ms * 1000000 + HORIZON_SLACK_NS;
	return now > back ? now - back : 0;
}

static void
live_ops_close(struct weir_input *in)
{
	struct live *l = in->priv;

	if (l != NULL) {
		if (l->map != NULL)
			munmap(l->map, l->maplen);
		free(l);
	}
	in->priv = NULL;
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
}

void
weir_live_close(struct weir_input *in)
{
	if (in->ops == &weir_live_afpacket)
		live_ops_close(in);
	in->ops = NULL;
}
