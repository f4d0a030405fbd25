//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tcpscope kernel side: TCP socket tracepoints and a TC classifier that
 * write fixed-size events (tcpscope.h) into one BPF ring buffer.
 *
 * Design rules:
 *  - CO-RE everywhere (BPF_CORE_READ); no kernel-version checks.
 *  - Configuration is `volatile const`, rewritten by the loader before load.
 *  - Filters run here so that filtered-out traffic costs a map lookup.
 *  - The consumer is not woken per event: it drains on a timer, and is woken
 *    when the ring's fill level crosses a multiple of wakeup_bytes.
 *  - A record is cut before its empty tail (tcpscope.h): the ring memory a
 *    record touches is most of what it costs.
 *  - Every failed reservation is counted per event kind (drops map).
 *  - Socket owners are captured in process context only and kept in an LRU
 *    map keyed by socket cookie; the entry is deleted when the socket is
 *    destroyed.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tcpscope.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_TCP_NUM 6
#define TC_ACT_UNSPEC (-1)
#define TCPHDR_FIN 0x01
#define TCPHDR_SYN 0x02
#define TCPHDR_ACK 0x10
#define TCPOPT_BUF 80 /* 40 bytes of options plus room for the widest option read */

/* Configuration, set by the Go loader before load. */
volatile const __u32 filter_netns = 0;       /* socket events: only this netns inode; 0 = all */
volatile const __u8 filter_ports = 0;        /* 1: only ports in ports_filter */
volatile const __u8 filter_hosts = 0;        /* 1: only addresses in hosts_filter */
volatile const __u32 emit_mask = 0xffffffff; /* bit (1 << event_kind) enables that kind */
volatile const __u64 wakeup_bytes = 1 << 20; /* wake the reader past this many queued bytes */
volatile const __u8 send_reset_has_reason = 1; /* tcp_send_reset carries enum sk_rst_reason */
volatile const __u8 retransmit_has_err = 1;    /* tcp_retransmit_skb carries err (>= 6.17) */
volatile const __u64 tw_timer_fn = 0;          /* address of tw_timer_handler (/proc/kallsyms) */
/* 1 (--packets control): the classifier reports SYN, FIN, RST and
 * suspicious packets and counts the others in conn_counts; the socket side
 * flushes the counts. 0: every packet is reported, conn_counts unused. */
volatile const __u8 count_packets = 0;
/* The inode of the network namespace whose interfaces the classifiers are
 * attached to (ifindex, the ifaces key, names an interface of one
 * namespace): the netns of a conn_counts key the classifier makes. */
volatile const __u32 tc_netns = 0;

/* For bpf2go -type: these types are otherwise reached only through pointers. */
const struct packet_event *unused_packet_event __attribute__((unused));
const struct sock_event *unused_sock_event __attribute__((unused));
const enum event_kind *unused_event_kind __attribute__((unused));
const enum packet_dir *unused_packet_dir __attribute__((unused));
const enum reset_dir *unused_reset_dir __attribute__((unused));
const enum tcp_option_bit *unused_tcp_option_bit __attribute__((unused));
const enum sock_event_flag *unused_sock_event_flag __attribute__((unused));
const enum tcp_opt_code *unused_tcp_opt_code __attribute__((unused));
const enum tw_event *unused_tw_event __attribute__((unused));
const enum owner_flag *unused_owner_flag __attribute__((unused));
const enum tcp_counters_flag *unused_tcp_counters_flag __attribute__((unused));
const struct pkt_counts_event *unused_pkt_counts_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* overridden by --ring-size */
} events SEC(".maps");

/* drops counts failed ring-buffer reservations, per CPU, per event kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EVENT_KIND_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* owners maps socket cookie -> owning process. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct owner);
} owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listener_key);
	__type(value, struct listener_owner);
} listeners SEC(".maps");

/* early_children holds the time of a child socket's LISTEN -> SYN_RECV
 * transition when the kernel made it before the child knew its peer
 * (Debian 6.1 and 6.12 do; 6.18 sets the addresses first): the event is
 * emitted at the child's next transition, with that time and the complete
 * tuple. Keyed by socket address; deleted when emitted or destroyed, LRU
 * for the rest. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} early_children SEC(".maps");

/* early_children_seen is set at the first early child: until then (always
 * on kernels that set a child's addresses first) no transition and no
 * destroyed socket looks early_children up, a random bucket of a 16k-entry
 * table that costs a cache miss. */
__u8 early_children_seen SEC(".bss");

/* raw_ip_ifaces is set by user space before it attaches the classifiers
 * to an interface without a link-layer header (tun, WireGuard): until
 * then every traced interface carries Ethernet-like headers and the
 * classifiers spare the per-packet ifaces lookup. */
__u8 raw_ip_ifaces SEC(".bss");

/* ports_filter holds the ports of --port (host byte order). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u8);
} ports_filter SEC(".maps");

/* hosts_filter holds the addresses and CIDRs of --host. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__type(key, struct host_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} hosts_filter SEC(".maps");

/* syn_key is a connection's 4-tuple as its SYN carries it (IPv4 in the
 * first 4 bytes of each address). Kernel-internal: Go never reads it. */
struct syn_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
};

/* lo_syn_cookies ties a SYN on loopback to the socket that sent it: skb->sk
 * is set on lo egress but NULL on lo ingress, where packets are reported.
 * tc_lo_egress adds an entry per SYN, tc_ingress consumes it; LRU bounds
 * the entries of SYNs that never reach ingress. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct syn_key);
	__type(value, __u64);
} lo_syn_cookies SEC(".maps");

/* packet_scratch is where a packet_event is built before it is copied to
 * the ring: its size (with or without SACK blocks) is known only once the
 * options are parsed. Map memory rather than the stack, whose every byte
 * the verifier tracks through the option loop. Per CPU: TC programs do not
 * nest on a CPU (they run with bottom halves disabled). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct packet_event);
} packet_scratch SEC(".maps");

/* conn_counts holds the counted packets of each connection (--packets
 * control), keyed as the local end sees it. Not an LRU: an LRU would evict
 * without telling; when an insert fails the packet is reported in full
 * instead and count_overflow counts it. Every entry is deleted when it is
 * flushed: at the socket's CLOSE, at the end of its TIME_WAIT, when the
 * socket is destroyed, by Go when idle too long (no socket flushes the
 * entries of forwarded traffic), or by Go at exit. Sized by
 * --max-packet-conns. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pkt_key);
	__type(value, struct pkt_counts);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} conn_counts SEC(".maps");

/* count_overflow counts, per CPU, packets reported in full because
 * conn_counts was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} count_overflow SEC(".maps");

/* ifaces holds per-interface parse settings, keyed by ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct iface_cfg);
} ifaces SEC(".maps");

static __always_inline bool kind_enabled(__u32 kind)
{
	return emit_mask & (1U << kind);
}

static __always_inline void count_drop(__u32 kind)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &kind);

	/* Atomic: a TC program in softirq can interrupt a tracepoint program
	 * on the same CPU. */
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline void *reserve(__u32 size, __u32 kind)
{
	void *ev = bpf_ringbuf_reserve(&events, size, 0);

	if (!ev)
		count_drop(kind);
	return ev;
}

/* submit queues an event without waking the reader, except when this
 * record takes the ring's fill level across a multiple of wakeup_bytes.
 * The reader sleeps only after it found the ring empty (and drains on a
 * timer anyway), so one wakeup per crossing is enough. Forcing one for
 * every record while the ring stays above the threshold (a reader that
 * lags) cost ~5 us per record (irq_work and a self-IPI). size is the
 * record's size (a multiple of 8); the ring adds an 8-byte header. */
static __always_inline void submit(void *ev, __u64 size)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 before = avail > size + 8 ? avail - size - 8 : 0;
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (avail >= wakeup_bytes && before / wakeup_bytes != avail / wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(ev, flags);
}

static __always_inline bool port_passes(__u16 a, __u16 b)
{
	if (!filter_ports)
		return true;
	return bpf_map_lookup_elem(&ports_filter, &a) || bpf_map_lookup_elem(&ports_filter, &b);
}

static __always_inline bool addr_in_hosts(__u8 family, const __u8 *addr)
{
	struct host_key key = {};

	if (family == AF_INET) {
		key.prefixlen = 128;
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], addr, 4);
	} else {
		key.prefixlen = 128;
		__builtin_memcpy(key.addr, addr, 16);
	}
	return bpf_map_lookup_elem(&hosts_filter, &key) != NULL;
}

static __always_inline bool hosts_pass(__u8 family, const __u8 *a, const __u8 *b)
{
	if (!filter_hosts)
		return true;
	return addr_in_hosts(family, a) || addr_in_hosts(family, b);
}

/* ---------------------------------------------------------------------
 * Socket side
 * ------------------------------------------------------------------- */

/*
 * In tp_btf programs the socket and skb arguments are BTF pointers: fields
 * are read with direct, CO-RE-relocated loads (vmlinux.h marks every struct
 * preserve_access_index), far cheaper than one bpf_probe_read_kernel per
 * field. Only fields outside struct sock (inet_sport) need a probe read.
 */

static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return sk->__sk_common.skc_net.net->ns.inum;
}

/* sk_is_full is sk_fullsock(): TIME_WAIT and request sockets share only
 * struct sock_common with a full socket; reading any field past it reads
 * a neighbouring object. */
static __always_inline bool sk_is_full(const struct sock *sk)
{
	__u8 state = sk->__sk_common.skc_state;

	return state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV;
}

/* is_tcp_sock: an IPv4/IPv6 TCP socket. TIME_WAIT and request sockets only
 * exist for TCP, and have no sk_protocol to read. */
static __always_inline bool is_tcp_sock(const struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;

	if (family != AF_INET && family != AF_INET6)
		return false;
	return !sk_is_full(sk) || sk->sk_protocol == IPPROTO_TCP_NUM;
}

/* sock_id is what filters look at and every sock_event carries. */
struct sock_id {
	__u32 netns;
	__u16 lport;
	__u16 rport;
	__u8 family;
	__u8 state;
	__u8 laddr[16];
	__u8 raddr[16];
};

/* read_sock_id reads family, addresses, ports, netns and state. The local
 * port comes from inet_sport for full sockets: skc_num is already 0 when a
 * socket moves to CLOSE. */
static __always_inline void read_sock_id(struct sock_id *id, const struct sock *sk)
{
	const struct sock_common *skc = &sk->__sk_common;

	id->family = skc->skc_family;
	if (id->family == AF_INET) {
		__builtin_memcpy(id->laddr, &skc->skc_rcv_saddr, 4);
		__builtin_memcpy(id->raddr, &skc->skc_daddr, 4);
	} else {
		__builtin_memcpy(id->laddr, &skc->skc_v6_rcv_saddr, 16);
		__builtin_memcpy(id->raddr, &skc->skc_v6_daddr, 16);
	}
	if (sk_is_full(sk))
		id->lport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	else
		id->lport = skc->skc_num;
	id->rport = bpf_ntohs(skc->skc_dport);
	id->netns = sock_netns(sk);
	id->state = skc->skc_state;
}

static __always_inline bool sock_id_passes(const struct sock_id *id)
{
	if (filter_netns && id->netns != filter_netns)
		return false;
	return port_passes(id->lport, id->rport) && hosts_pass(id->family, id->laddr, id->raddr);
}

static __always_inline void put_sock_id(struct sock_event *ev, const struct sock_id *id, bool has_state)
{
	ev->family = id->family;
	ev->netns = id->netns;
	ev->lport = id->lport;
	ev->rport = id->rport;
	__builtin_memcpy(ev->laddr, id->laddr, 16);
	__builtin_memcpy(ev->raddr, id->raddr, 16);
	if (has_state) {
		ev->state = id->state;
		ev->flags |= SOCK_HAS_STATE;
	}
}

/* is_loopback_key reports whether a count key's local address is a
 * loopback one (127.0.0.0/8, ::1). */
static __always_inline bool is_loopback_key(const struct pkt_key *key)
{
	if (key->family == AF_INET)
		return key->laddr[0] == 127;
	return !*(__u64 *)key->laddr && !*(__u32 *)&key->laddr[8] && *(__u32 *)&key->laddr[12] == bpf_htonl(1);
}

/* counts_entry finds the count map entry of a socket's connection and
 * fills key with the key it is under, or returns NULL. */
static __always_inline struct pkt_counts *counts_entry(const struct sock_id *id, struct pkt_key *key)
{
	struct pkt_counts *v;

	key->family = id->family;
	key->lport = id->lport;
	key->rport = id->rport;
	key->netns = id->netns;
	if (id->family == AF_INET6 && !*(__u64 *)id->laddr && *(__u32 *)&id->laddr[8] == bpf_htonl(0xffff)) {
		/* v4-mapped: the wire carries IPv4 */
		key->family = AF_INET;
		__builtin_memcpy(key->laddr, &id->laddr[12], 4);
		__builtin_memcpy(key->raddr, &id->raddr[12], 4);
	} else {
		__builtin_memcpy(key->laddr, id->laddr, 16);
		__builtin_memcpy(key->raddr, id->raddr, 16);
	}
	v = bpf_map_lookup_elem(&conn_counts, key);
	if (!v && key->netns != tc_netns && !is_loopback_key(key)) {
		/* A socket of another namespace whose packets crossed the
		 * traced interfaces (a container's, traced on the host's
		 * veth): the classifier keyed them by the traced namespace.
		 * Loopback packets never leave their namespace: a loopback
		 * socket elsewhere with the same 4-tuple is another
		 * connection. */
		key->netns = tc_netns;
		v = bpf_map_lookup_elem(&conn_counts, key);
	}
	return v;
}

/* flush_counts emits the count map entry of a socket's connection (if
 * any) as an EVENT_PKT_COUNTS record and deletes it. The entry is deleted
 * even when the record cannot be written (the drop is counted) or the
 * socket's events are filtered out: every exit path removes it. */
static __always_inline void flush_counts(const struct sock_id *id, __u64 cookie)
{
	struct pkt_counts_event *ev;
	struct pkt_counts *v;
	struct pkt_key key = {};

	if (!count_packets)
		return;
	v = counts_entry(id, &key);
	if (!v)
		return;
	if (sock_id_passes(id) && kind_enabled(EVENT_PKT_COUNTS)) {
		ev = reserve(sizeof(*ev), EVENT_PKT_COUNTS);
		if (ev) {
			ev->kind = EVENT_PKT_COUNTS;
			ev->family = key.family;
			ev->_pad[0] = 0;
			ev->_pad[1] = 0;
			ev->netns = id->netns;
			ev->ts_ns = bpf_ktime_get_ns();
			ev->cookie = cookie;
			ev->key = key;
			ev->counts = *v;
			submit(ev, sizeof(*ev));
		}
	}
	bpf_map_delete_elem(&conn_counts, &key);
}

/* take_counts copies the count map entry of a socket's connection into
 * out and deletes it; false when there is none. Its CLOSE record carries
 * the counts then, instead of an EVENT_PKT_COUNTS record of its own. A
 * subprogram, as flush_sock_counts. */
static __noinline bool take_counts(const struct sock_id *id, struct pkt_counts *out)
{
	struct pkt_counts *v;
	struct pkt_key key = {};

	if (!id || !out)
		return false;
	v = counts_entry(id, &key);
	if (!v)
		return false;
	*out = *v;
	bpf_map_delete_elem(&conn_counts, &key);
	return true;
}

/* flush_sock_counts flushes the count entry of a full socket's
 * connection. A subprogram, not inlined: inlined into on_set_state, clang
 * spilled a register that this path never sets, and the verifier refuses
 * the read of an uninitialized register. */
static __noinline void flush_sock_counts(const struct sock *sk, __u64 cookie)
{
	struct sock_id id;

	read_sock_id(&id, sk);
	flush_counts(&id, cookie);
}

static __always_inline void current_owner(struct owner *o)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();

	o->pid = (__u32)id;
	o->tgid = id >> 32;
	o->uid = (__u32)ug;
	o->flags = 0;
	o->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

/* record_owner stores the current task as the owner of a socket. Call it
 * only in process context. */
static __always_inline void record_owner(__u64 cookie)
{
	struct owner o;

	current_owner(&o);
	bpf_map_update_elem(&owners, &cookie, &o, BPF_ANY);
}

/* same_owner compares two owners field by field (comm is NUL-padded by
 * bpf_get_current_comm, so all 16 bytes compare). */
static __always_inline bool same_owner(const struct owner *a, const struct owner *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

/* refresh_owner_at_close is record_owner for close and shutdown, where
 * the socket nearly always has an owner entry already, most often this very
 * task: a lookup and a compare instead of an LRU update (which allocates a
 * node and takes the LRU lock). The entry ends as record_owner leaves it. */
static __always_inline void refresh_owner_at_close(__u64 cookie)
{
	struct owner o, *cur;

	current_owner(&o);
	cur = bpf_map_lookup_elem(&owners, &cookie);
	if (cur && same_owner(cur, &o))
		return;
	bpf_map_update_elem(&owners, &cookie, &o, BPF_ANY);
}

/* owner_of returns the owner entry of a socket, or NULL. */
static __always_inline const struct owner *owner_of(__u64 cookie)
{
	if (!cookie)
		return NULL;
	return bpf_map_lookup_elem(&owners, &cookie);
}

/* new_sock_event reserves a zeroed sock_event with kind, time and cookie
 * set, or returns NULL (and counts a drop) when the ring buffer is full.
 * With an owner it carries it (SOCK_HAS_OWNER) and ends before counters
 * (SOCK_EVENT_OWNER); without, it is cut before owner (SOCK_EVENT_SHORT).
 * *size is what was reserved. A record that will carry counters is made
 * whole by new_close_event instead. */
static __always_inline struct sock_event *new_sock_event(__u32 kind, __u64 ts, __u64 cookie,
							 const struct owner *o, __u32 *size)
{
	struct sock_event *ev;

	if (o) {
		ev = reserve(SOCK_EVENT_OWNER, kind);
		if (!ev)
			return NULL;
		__builtin_memset(ev, 0, SOCK_EVENT_SHORT);
		ev->owner = *o;
		ev->flags = SOCK_HAS_OWNER;
		*size = SOCK_EVENT_OWNER;
	} else {
		ev = reserve(SOCK_EVENT_SHORT, kind);
		if (!ev)
			return NULL;
		__builtin_memset(ev, 0, SOCK_EVENT_SHORT);
		*size = SOCK_EVENT_SHORT;
	}
	ev->kind = kind;
	ev->ts_ns = ts;
	ev->cookie = cookie;
	return ev;
}

/* new_close_event is new_sock_event for a state change to CLOSE that
 * carries the socket's counters, and pkt (the connection's packet counts)
 * when not NULL: the record up to its counters (SOCK_EVENT_COUNTERS) or
 * whole, a zero owner when there is none. */
static __always_inline struct sock_event *new_close_event(__u64 ts, __u64 cookie, const struct owner *o,
							  const struct pkt_counts *pkt, __u32 *size)
{
	struct sock_event *ev;

	if (pkt) {
		ev = reserve(sizeof(*ev), EVENT_STATE);
		if (!ev)
			return NULL;
		ev->pkt = *pkt;
		*size = sizeof(*ev);
	} else {
		ev = reserve(SOCK_EVENT_COUNTERS, EVENT_STATE);
		if (!ev)
			return NULL;
		*size = SOCK_EVENT_COUNTERS;
	}
	__builtin_memset(ev, 0, SOCK_EVENT_SHORT);
	if (o) {
		ev->owner = *o;
		ev->flags = SOCK_HAS_OWNER;
	} else {
		__builtin_memset(&ev->owner, 0, sizeof(ev->owner));
	}
	if (pkt)
		ev->flags |= SOCK_HAS_PKT_COUNTS;
	ev->kind = EVENT_STATE;
	ev->ts_ns = ts;
	ev->cookie = cookie;
	return ev;
}

/* put_counters copies a TCP socket's lifetime counters (tcp_get_info's
 * sources) into the record. bytes_sent and bytes_retrans are CO-RE
 * guarded: absent on kernels before 4.19. */
static __always_inline void put_counters(struct sock_event *ev, const struct tcp_sock *tp)
{
	struct tcp_counters *c = &ev->counters;

	c->bytes_acked = tp->bytes_acked;
	c->bytes_received = tp->bytes_received;
	c->segs_in = tp->segs_in;
	c->segs_out = tp->segs_out;
	c->data_segs_in = tp->data_segs_in;
	c->data_segs_out = tp->data_segs_out;
	c->total_retrans = tp->total_retrans;
	c->flags = 0;
	if (bpf_core_field_exists(tp->bytes_sent)) {
		c->bytes_sent = tp->bytes_sent;
		c->flags |= COUNTERS_HAS_BYTES_SENT;
	} else {
		c->bytes_sent = 0;
	}
	if (bpf_core_field_exists(tp->bytes_retrans)) {
		c->bytes_retrans = tp->bytes_retrans;
		c->flags |= COUNTERS_HAS_BYTES_RETRANS;
	} else {
		c->bytes_retrans = 0;
	}
	ev->flags |= SOCK_HAS_COUNTERS;
}

/* inherit_listener_owner gives a child socket the owner of the socket
 * listening on its port, unless that is ambiguous (SO_REUSEPORT across
 * processes). */
static __always_inline void inherit_listener_owner(const struct sock *sk, __u64 cookie)
{
	struct listener_key lk = {};
	struct listener_owner *l;

	lk.netns = sock_netns(sk);
	lk.port = sk->__sk_common.skc_num;
	l = bpf_map_lookup_elem(&listeners, &lk);
	if (l && !l->ambiguous)
		bpf_map_update_elem(&owners, &cookie, &l->owner, BPF_ANY);
}

/* track_owner keeps the owners and listeners maps current. State
 * transitions into SYN_SENT (connect), LISTEN (listen), FIN_WAIT1 and
 * LAST_ACK (close/shutdown) only ever happen in the owner's process
 * context; a child socket (LISTEN -> SYN_RECV, in softirq) inherits the
 * owner of its listener. */
static __always_inline void track_owner(const struct sock *sk, __u64 cookie, int oldstate, int newstate)
{
	struct listener_key lk = {};
	struct listener_owner *l;

	switch (newstate) {
	case TCP_SYN_SENT:
		record_owner(cookie);
		return;
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
		refresh_owner_at_close(cookie);
		return;
	case TCP_LISTEN: {
		struct listener_owner nl = {};

		current_owner(&nl.owner);
		bpf_map_update_elem(&owners, &cookie, &nl.owner, BPF_ANY);
		lk.netns = sock_netns(sk);
		/* listen() without bind() picks the port after this event:
		 * such a listener is not registered, its children get their
		 * owner at their first send or receive. */
		lk.port = sk->__sk_common.skc_num;
		if (!lk.port)
			return;
		l = bpf_map_lookup_elem(&listeners, &lk);
		if (l) {
			__sync_fetch_and_add(&l->count, 1);
			if (l->owner.tgid != nl.owner.tgid)
				l->ambiguous = 1;
			return;
		}
		nl.count = 1;
		bpf_map_update_elem(&listeners, &lk, &nl, BPF_NOEXIST);
		return;
	}
	case TCP_SYN_RECV:
		if (oldstate == TCP_LISTEN)
			inherit_listener_owner(sk, cookie);
		return;
	case TCP_ESTABLISHED:
		/* A child whose LISTEN -> SYN_RECV came too early to be keyed by
		 * its own cookie gets its owner now. */
		if (oldstate == TCP_SYN_RECV && !bpf_map_lookup_elem(&owners, &cookie))
			inherit_listener_owner(sk, cookie);
		return;
	case TCP_CLOSE:
		if (oldstate == TCP_LISTEN) {
			lk.netns = sock_netns(sk);
			lk.port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
			l = bpf_map_lookup_elem(&listeners, &lk);
			if (l && __sync_fetch_and_sub(&l->count, 1) <= 1)
				bpf_map_delete_elem(&listeners, &lk);
		}
		return;
	}
}

static __always_inline void emit_state(const struct sock *sk, const struct sock_id *id, __u64 cookie,
				       int oldstate, int newstate, __u64 ts, const struct pkt_counts *pkt)
{
	struct sock_event *ev;
	struct tcp_sock *tp;
	__u32 size;

	tp = bpf_skc_to_tcp_sock((void *)sk);
	/* A connection's socket ends at CLOSE (a TIME_WAIT socket that takes
	 * over counts nothing more): its counters are final there. Only this
	 * transition makes the record longer. */
	if (newstate == TCP_CLOSE && tp && oldstate != TCP_LISTEN) {
		ev = new_close_event(ts, cookie, owner_of(cookie), pkt, &size);
		if (!ev)
			return;
		put_counters(ev, tp);
	} else {
		ev = new_sock_event(EVENT_STATE, ts, cookie, owner_of(cookie), &size);
		if (!ev)
			return;
	}
	/* The connection's last smoothed RTT and cwnd: what the kernel knows
	 * of the path when the state changes (srtt_us is stored << 3).
	 * No RTT sample yet (SYN_SENT, a child before its first ACK):
	 * srtt_us is 0 and the flag stays clear, so both are absent. */
	if (tp && tp->srtt_us && newstate != TCP_LISTEN && oldstate != TCP_LISTEN) {
		ev->srtt_us = tp->srtt_us >> 3;
		ev->snd_cwnd = tp->snd_cwnd;
		ev->flags |= SOCK_HAS_TCPINFO;
	}
	put_sock_id(ev, id, false);
	ev->old_state = oldstate;
	ev->state = newstate;
	ev->flags |= SOCK_HAS_STATE;
	submit(ev, size);
}

/* on_set_state: tp_btf/inet_sock_set_state (kernel >= 5.5 for tp_btf,
 * tracepoint >= 4.16). Every TCP state transition of every socket, v4 and
 * v6, in every network namespace. Keeps socket owners current and emits
 * EVENT_STATE. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_set_state, const struct sock *sk, int oldstate, int newstate)
{
	struct pkt_counts pkt;
	struct sock_id id;
	bool closing;
	__u64 cookie, early_ts = 0, key = (__u64)sk;

	if (!is_tcp_sock(sk))
		return 0;
	if (oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV && !sk->__sk_common.skc_dport) {
		/* The child does not know its peer (nor its own cookie) yet. */
		early_ts = bpf_ktime_get_ns();
		bpf_map_update_elem(&early_children, &key, &early_ts, BPF_ANY);
		early_children_seen = 1;
		return 0;
	}
	if (oldstate == TCP_SYN_RECV && early_children_seen) {
		__u64 *ts = bpf_map_lookup_elem(&early_children, &key);

		if (ts) {
			early_ts = *ts;
			bpf_map_delete_elem(&early_children, &key);
		}
	}
	cookie = bpf_get_socket_cookie((void *)sk);
	track_owner(sk, cookie, oldstate, newstate);
	/* The socket's end: its connection's packet counts go in its CLOSE
	 * record, or in a record of their own when that is not written. */
	closing = count_packets && newstate == TCP_CLOSE && oldstate != TCP_LISTEN;
	if (!kind_enabled(EVENT_STATE)) {
		if (closing)
			flush_sock_counts(sk, cookie);
		return 0;
	}
	read_sock_id(&id, sk);
	if (!sock_id_passes(&id)) {
		if (closing)
			flush_sock_counts(sk, cookie);
		return 0;
	}
	if (early_ts)
		emit_state(sk, &id, cookie, TCP_LISTEN, TCP_SYN_RECV, early_ts, NULL);
	if (closing && take_counts(&id, &pkt))
		emit_state(sk, &id, cookie, oldstate, newstate, bpf_ktime_get_ns(), &pkt);
	else
		emit_state(sk, &id, cookie, oldstate, newstate, bpf_ktime_get_ns(), NULL);
	return 0;
}

/* on_destroy_sock: tp_btf/tcp_destroy_sock (kernel >= 5.12). The last event
 * of every full TCP socket: drops its owner entry. */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(on_destroy_sock, struct sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk), key = (__u64)sk;

	bpf_map_delete_elem(&owners, &cookie);
	if (early_children_seen)
		bpf_map_delete_elem(&early_children, &key);
	if (count_packets && is_tcp_sock(sk))
		flush_sock_counts(sk, cookie);
	return 0;
}

/* refresh_owner records the current task as owner when it differs: send and
 * receive run in the process that uses the socket (this catches accept() in
 * another process and passed file descriptors). */
static __always_inline void refresh_owner(struct sock *sk)
{
	struct owner *o;
	__u64 cookie;
	__u32 tgid;

	if (!is_tcp_sock(sk))
		return;
	cookie = bpf_get_socket_cookie(sk);
	tgid = bpf_get_current_pid_tgid() >> 32;
	o = bpf_map_lookup_elem(&owners, &cookie);
	/* An owner seeded at start-up lacks the thread (and maybe the
	 * cgroup): the first send or receive completes it. */
	if (o && o->tgid == tgid && !o->flags)
		return;
	record_owner(cookie);
}

/* on_send_length: tp_btf/sock_send_length (kernel >= 6.4), process context
 * of every sendmsg. Optional: dropped before load when absent. */
SEC("tp_btf/sock_send_length")
int BPF_PROG(on_send_length, struct sock *sk, int ret, int flags)
{
	refresh_owner(sk);
	return 0;
}

/* on_recv_length: tp_btf/sock_recv_length (kernel >= 6.4), process context
 * of every recvmsg. Optional: dropped before load when absent. */
SEC("tp_btf/sock_recv_length")
int BPF_PROG(on_recv_length, struct sock *sk, int ret, int flags)
{
	refresh_owner(sk);
	return 0;
}

/* on_retransmit: tp_btf/tcp_retransmit_skb (kernel >= 4.16). The kernel
 * retransmitted a segment; seq, length and segment count (GSO) come from
 * the skb control block.
 * Since 6.17 the tracepoint also fires for attempts that failed (err != 0,
 * e.g. the original still in a host queue): those sent nothing and are
 * skipped, as older kernels never reported them. */
SEC("tp_btf/tcp_retransmit_skb")
int on_retransmit(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	const struct sk_buff *skb = (const struct sk_buff *)ctx[1];
	struct sock_event *ev;
	struct tcp_skb_cb *tcb;
	struct sock_id id;
	__u32 seq, end_seq, size;
	__u16 tflags, segs;
	__u64 cookie;

	if (!kind_enabled(EVENT_RETRANSMIT) || !sk || !skb || !is_tcp_sock(sk))
		return 0;
	if (retransmit_has_err && (int)ctx[2] != 0)
		return 0;
	read_sock_id(&id, sk);
	if (!sock_id_passes(&id))
		return 0;
	cookie = bpf_get_socket_cookie((void *)sk);
	ev = new_sock_event(EVENT_RETRANSMIT, bpf_ktime_get_ns(), cookie, owner_of(cookie), &size);
	if (!ev)
		return 0;
	put_sock_id(ev, &id, true);
	tcb = (struct tcp_skb_cb *)__builtin_preserve_access_index(&skb->cb);
	seq = BPF_CORE_READ(tcb, seq);
	end_seq = BPF_CORE_READ(tcb, end_seq);
	tflags = BPF_CORE_READ(tcb, tcp_flags);
	/* tcp_skb_pcount(skb), what __tcp_retransmit_skb adds to
	 * TcpRetransSegs; at least one. */
	segs = BPF_CORE_READ(tcb, tcp_gso_segs);
	ev->segs = segs ? segs : 1;
	ev->seq = seq;
	ev->len = end_seq - seq;
	if (tflags & (TCPHDR_SYN | TCPHDR_FIN))
		ev->len -= ((tflags & TCPHDR_SYN) ? 1 : 0) + ((tflags & TCPHDR_FIN) ? 1 : 0);
	ev->tcp_flags = tflags;
	submit(ev, size);
	return 0;
}

/* read_skb_id takes addresses from the headers of the segment that provoked
 * a reset: the reset goes back to its source, so the segment's destination
 * is the local end. The skb's data is not BTF memory: probe reads. */
static __always_inline bool read_skb_id(struct sock_id *id, __u8 *tcp_flags, const struct sk_buff *skb)
{
	unsigned char *head = skb->head;
	__u16 nh = skb->network_header;
	__u16 th = skb->transport_header;
	struct tcphdr tcp;
	__u8 version;

	if (bpf_probe_read_kernel(&version, 1, head + nh))
		return false;
	version >>= 4;
	if (version == 4) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return false;
		id->family = AF_INET;
		__builtin_memcpy(id->laddr, &ip.daddr, 4);
		__builtin_memcpy(id->raddr, &ip.saddr, 4);
	} else if (version == 6) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return false;
		id->family = AF_INET6;
		__builtin_memcpy(id->laddr, &ip6.daddr, 16);
		__builtin_memcpy(id->raddr, &ip6.saddr, 16);
	} else {
		return false;
	}
	if (bpf_probe_read_kernel(&tcp, sizeof(tcp), head + th))
		return false;
	id->lport = bpf_ntohs(tcp.dest);
	id->rport = bpf_ntohs(tcp.source);
	*tcp_flags = ((__u8 *)&tcp)[13];
	id->netns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	return true;
}

/* on_send_reset: tp_btf/tcp_send_reset (kernel >= 5.5; the sk_rst_reason
 * argument exists since 6.10 and is read only when the loader found it in
 * kernel BTF). sk is NULL when no socket matched (connection refused) and
 * skb is NULL for active resets (abort, SO_LINGER 0): either may be absent. */
SEC("tp_btf/tcp_send_reset")
int on_send_reset(__u64 *ctx)
{
	const struct sock *sk = (const struct sock *)ctx[0];
	const struct sk_buff *skb = (const struct sk_buff *)ctx[1];
	struct sock_id id = {};
	struct sock_event *ev;
	bool has_state = false;
	__u64 cookie = 0;
	__u8 tflags = 0;
	__u32 size;

	if (!kind_enabled(EVENT_RESET))
		return 0;
	if (sk && !is_tcp_sock(sk))
		return 0;
	/* The segment that provoked the reset names the connection exactly,
	 * also when sk is a listener (remote 0.0.0.0:0) or a TIME_WAIT or
	 * request socket; the socket gives state, netns and cookie. */
	if (skb) {
		if (!read_skb_id(&id, &tflags, skb))
			return 0;
		if (sk) {
			id.state = sk->__sk_common.skc_state;
			has_state = true;
			if (!id.netns)
				id.netns = sock_netns(sk);
		}
	} else if (sk) {
		read_sock_id(&id, sk);
		has_state = true;
	} else {
		return 0;
	}
	if (!sock_id_passes(&id))
		return 0;
	if (sk)
		cookie = bpf_get_socket_cookie((void *)sk);

	ev = new_sock_event(EVENT_RESET, bpf_ktime_get_ns(), cookie, owner_of(cookie), &size);
	if (!ev)
		return 0;
	ev->reset_dir = RESET_SENT;
	ev->tcp_flags = tflags;
	put_sock_id(ev, &id, has_state);
	if (send_reset_has_reason) {
		ev->reason = (__u32)ctx[2];
		ev->flags |= SOCK_HAS_REASON;
	}
	submit(ev, size);
	return 0;
}

/* on_receive_reset: tp_btf/tcp_receive_reset (kernel >= 5.5). A valid RST
 * arrived for a full socket. */
SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(on_receive_reset, struct sock *sk)
{
	struct sock_event *ev;
	struct sock_id id;
	__u64 cookie;
	__u32 size;

	if (!kind_enabled(EVENT_RESET) || !sk || !is_tcp_sock(sk))
		return 0;
	read_sock_id(&id, sk);
	if (!sock_id_passes(&id))
		return 0;
	cookie = bpf_get_socket_cookie(sk);
	ev = new_sock_event(EVENT_RESET, bpf_ktime_get_ns(), cookie, owner_of(cookie), &size);
	if (!ev)
		return 0;
	ev->reset_dir = RESET_RECEIVED;
	put_sock_id(ev, &id, true);
	submit(ev, size);
	return 0;
}

/* on_tw_timer reports the timer of a TIME_WAIT socket: the mini-socket that
 * replaces the active closer fires no inet_sock_set_state, but its timer
 * is armed when TIME_WAIT begins, expires when it ends, and is cancelled
 * when the socket is killed early (a new SYN on the 4-tuple, a RST,
 * tcp_tw_reuse, ss -K). The timer tracepoints fire for every kernel timer:
 * anything else costs one load and a compare. */
static __always_inline int on_tw_timer(struct timer_list *timer, __u8 what)
{
	struct inet_timewait_sock *tw;
	struct sock_event *ev;
	struct sock_id id = {};
	__u64 cookie;
	__u32 size;

	if (!tw_timer_fn || (__u64)timer->function != tw_timer_fn)
		return 0;
	if (!kind_enabled(EVENT_STATE) && !count_packets)
		return 0;
	tw = (void *)((__u64)timer - bpf_core_field_offset(struct inet_timewait_sock, tw_timer));
	id.family = BPF_CORE_READ(tw, __tw_common.skc_family);
	if (id.family == AF_INET) {
		bpf_core_read(id.laddr, 4, &tw->__tw_common.skc_rcv_saddr);
		bpf_core_read(id.raddr, 4, &tw->__tw_common.skc_daddr);
	} else if (id.family == AF_INET6) {
		bpf_core_read(id.laddr, 16, &tw->__tw_common.skc_v6_rcv_saddr);
		bpf_core_read(id.raddr, 16, &tw->__tw_common.skc_v6_daddr);
	} else {
		return 0;
	}
	id.lport = BPF_CORE_READ(tw, __tw_common.skc_num);
	id.rport = bpf_ntohs(BPF_CORE_READ(tw, __tw_common.skc_dport));
	id.netns = BPF_CORE_READ(tw, __tw_common.skc_net.net, ns.inum);
	id.state = BPF_CORE_READ(tw, tw_substate);
	/* The TIME_WAIT socket keeps the cookie of the socket it replaces. */
	cookie = BPF_CORE_READ(tw, __tw_common.skc_cookie.counter);
	/* TIME_WAIT ends (or is re-armed: later packets make a new entry). */
	if (what != TW_ARMED)
		flush_counts(&id, cookie);
	if (!kind_enabled(EVENT_STATE) || !sock_id_passes(&id))
		return 0;
	/* No owner: the TIME_WAIT socket has no process. */
	ev = new_sock_event(EVENT_TIMEWAIT, bpf_ktime_get_ns(), cookie, NULL, &size);
	if (!ev)
		return 0;
	put_sock_id(ev, &id, true);
	ev->tw_event = what;
	submit(ev, size);
	return 0;
}

/* on_timer_start, on_timer_expire, on_timer_cancel: tp_btf timer
 * tracepoints (kernel >= 5.5 for tp_btf), only for the TIME_WAIT timer.
 * Optional: dropped when tw_timer_handler is not in /proc/kallsyms. */
SEC("tp_btf/timer_start")
int BPF_PROG(on_timer_start, struct timer_list *timer)
{
	return on_tw_timer(timer, TW_ARMED);
}

SEC("tp_btf/timer_expire_entry")
int BPF_PROG(on_timer_expire, struct timer_list *timer)
{
	return on_tw_timer(timer, TW_EXPIRED);
}

SEC("tp_btf/timer_cancel")
int BPF_PROG(on_timer_cancel, struct timer_list *timer)
{
	return on_tw_timer(timer, TW_CANCELLED);
}

/* ---------------------------------------------------------------------
 * Packet side
 * ------------------------------------------------------------------- */

/* skb_bytes copies n (a constant) bytes at off of the packet to dst:
 * straight from the linear data when it holds them, which spares a
 * helper call per header on the common path, else with
 * bpf_skb_load_bytes (headers in paged data). Returns 0 or a negative
 * error, as bpf_skb_load_bytes does. */
static __always_inline long skb_bytes(struct __sk_buff *skb, __u32 off, void *dst, const __u32 n)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	/* The bound on off is for the verifier: headers sit well within
	 * the first KiB, and the rest takes the helper. */
	if (off <= 0x3ff && data + off + n <= data_end) {
		__builtin_memcpy(dst, data + off, n);
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, dst, n);
}

static __always_inline __u32 be32_at(const __u8 *p)
{
	return ((__u32)p[0] << 24) | ((__u32)p[1] << 16) | ((__u32)p[2] << 8) | p[3];
}

/* parse_tcp_options fills MSS, window scale, SACK-permitted, SACK blocks
 * and timestamps from the option bytes, and records the options' order
 * (with NOPs) so that they can be printed as tcpdump prints them. */
static __always_inline void parse_tcp_options(struct __sk_buff *skb, __u32 off, __u32 optlen,
					      struct packet_event *ev)
{
	__u8 opts[TCPOPT_BUF] = {};
	__u32 i = 0, slot = 0;

	/* Options come in 4-byte words. The barrier keeps clang from turning
	 * "< 4" into "== 0", from which older verifiers (6.1) do not learn
	 * that the load length is non-zero. */
	asm volatile("" : "+r"(optlen));
	if (optlen < 4 || optlen > 40)
		return;
	if (bpf_skb_load_bytes(skb, off, opts, optlen))
		return;

	for (int n = 0; n < 40; n++) {
		__u64 code = OPTC_OTHER;
		__u8 kind, len = 1;

		if (i >= optlen || i > 39)
			break;
		kind = opts[i];
		if (kind == 0) {
			code = OPTC_EOL;
		} else if (kind == 1) {
			code = OPTC_NOP;
		} else {
			len = opts[i + 1];
			if (len < 2 || i + len > optlen)
				break;
			switch (kind) {
			case 2: /* MSS */
				if (len == 4) {
					ev->mss = ((__u16)opts[i + 2] << 8) | opts[i + 3];
					ev->options |= OPT_MSS;
					code = OPTC_MSS;
				}
				break;
			case 3: /* window scale */
				if (len == 3) {
					ev->wscale = opts[i + 2];
					ev->options |= OPT_WSCALE;
					code = OPTC_WSCALE;
				}
				break;
			case 4: /* SACK permitted */
				ev->options |= OPT_SACK_OK;
				code = OPTC_SACK_OK;
				break;
			case 5: /* SACK blocks */
				ev->sack_blocks = (len - 2) / 8;
				ev->options |= OPT_SACK;
				code = OPTC_SACK;
				for (int b = 0; b < 4; b++) {
					if (b >= ev->sack_blocks)
						break;
					ev->sack[2 * b] = be32_at(&opts[i + 2 + 8 * b]);
					ev->sack[2 * b + 1] = be32_at(&opts[i + 6 + 8 * b]);
				}
				break;
			case 8: /* timestamps */
				if (len == 10) {
					ev->ts_val = be32_at(&opts[i + 2]);
					ev->ts_ecr = be32_at(&opts[i + 6]);
					ev->options |= OPT_TIMESTAMP;
					code = OPTC_TIMESTAMP;
				}
				break;
			}
		}
		if (slot < 16)
			ev->opt_order |= code << (4 * slot);
		slot++;
		if (kind == 0) /* end of option list */
			break;
		i += len;
	}
}

struct parsed_l3 {
	__u32 l4_off;
	__u32 ip_payload; /* L4 bytes according to the IP header; 0 when unknown */
	__u8 family;
	__u8 saddr[16];
	__u8 daddr[16];
};

static __always_inline bool parse_ipv4(struct __sk_buff *skb, __u32 off, struct parsed_l3 *l3)
{
	struct iphdr ip;
	__u32 ihl;

	if (skb_bytes(skb, off, &ip, sizeof(ip)))
		return false;
	if (ip.protocol != IPPROTO_TCP_NUM)
		return false;
	if (bpf_ntohs(ip.frag_off) & 0x1fff) /* not the first fragment */
		return false;
	ihl = ip.ihl * 4;
	if (ihl < sizeof(ip))
		return false;
	l3->family = AF_INET;
	__builtin_memcpy(l3->saddr, &ip.saddr, 4);
	__builtin_memcpy(l3->daddr, &ip.daddr, 4);
	l3->l4_off = off + ihl;
	/* Total length is 0 in GSO super-packets larger than 64 KiB. */
	if (bpf_ntohs(ip.tot_len) > ihl)
		l3->ip_payload = bpf_ntohs(ip.tot_len) - ihl;
	return true;
}

static __always_inline bool parse_ipv6(struct __sk_buff *skb, __u32 off, struct parsed_l3 *l3)
{
	struct ipv6hdr ip6;
	__u32 ext = 0;
	__u8 next;

	if (skb_bytes(skb, off, &ip6, sizeof(ip6)))
		return false;
	next = ip6.nexthdr;
	off += sizeof(ip6);
	for (int n = 0; n < 6 && next != IPPROTO_TCP_NUM; n++) {
		__u8 hdr[2];

		switch (next) {
		case 0:  /* hop-by-hop */
		case 43: /* routing */
		case 60: /* destination options */
			if (bpf_skb_load_bytes(skb, off, hdr, 2))
				return false;
			next = hdr[0];
			off += (hdr[1] + 1) * 8;
			ext += (hdr[1] + 1) * 8;
			break;
		case 44: { /* fragment */
			__u8 frag[4];

			if (bpf_skb_load_bytes(skb, off, frag, 4))
				return false;
			if (((frag[2] << 8) | frag[3]) & 0xfff8) /* not the first fragment */
				return false;
			next = frag[0];
			off += 8;
			ext += 8;
			break;
		}
		default:
			return false;
		}
	}
	if (next != IPPROTO_TCP_NUM)
		return false;
	l3->family = AF_INET6;
	__builtin_memcpy(l3->saddr, &ip6.saddr, 16);
	__builtin_memcpy(l3->daddr, &ip6.daddr, 16);
	l3->l4_off = off;
	if (bpf_ntohs(ip6.payload_len) > ext)
		l3->ip_payload = bpf_ntohs(ip6.payload_len) - ext;
	return true;
}

/* take_lo_syn_cookie returns (and forgets) the cookie tc_lo_egress saw
 * for this SYN, or 0. */
static __always_inline __u64 take_lo_syn_cookie(const struct parsed_l3 *l3, const struct tcphdr *tcp)
{
	struct syn_key key = {};
	__u64 *v, cookie;

	__builtin_memcpy(key.saddr, l3->saddr, 16);
	__builtin_memcpy(key.daddr, l3->daddr, 16);
	key.sport = bpf_ntohs(tcp->source);
	key.dport = bpf_ntohs(tcp->dest);
	v = bpf_map_lookup_elem(&lo_syn_cookies, &key);
	if (!v)
		return 0;
	cookie = *v;
	bpf_map_delete_elem(&lo_syn_cookies, &key);
	return cookie;
}

#define TCPHDR_RST 0x04
#define TCPHDR_URG 0x20
#define TCPHDR_ECE 0x40
#define TCPHDR_CWR 0x80
#define SEQ_LEQ(a, b) ((__s32)((a) - (b)) <= 0)

/* count_packet is --packets control: it counts the packet in its
 * connection's conn_counts entry and returns true, or returns false when
 * the packet must be reported in full: SYN, FIN, RST, URG, ECE, CWR; TCP
 * options other than a lone timestamp (SACK blocks); a zero window;
 * payload that ends at or below the highest sequence end this direction
 * already sent (retransmission or out of order); a keepalive probe
 * (highest end - 1, no payload); a duplicate ACK (no payload, same ack
 * and window as the direction's last); the first packet of a connection's
 * entry (the handshake's third ACK: the analysis checks the handshake
 * with it); or a full map (counted in count_overflow). */
static __always_inline bool count_packet(struct __sk_buff *skb, const struct parsed_l3 *l3,
					 const struct tcphdr *tcp, __u32 doff, __u32 len, __u8 dir)
{
	struct pkt_key key = {};
	struct pkt_counts *v;
	struct pkt_dir_counts *d;
	__u8 flags = ((__u8 *)tcp)[13];
	__u32 seq, ack, end, idx = dir == DIR_EGRESS ? 0 : 1;
	__u16 win;

	if (flags & (TCPHDR_SYN | TCPHDR_FIN | TCPHDR_RST | TCPHDR_URG | TCPHDR_ECE | TCPHDR_CWR))
		return false;
	win = bpf_ntohs(tcp->window);
	if (!win)
		return false;
	if (doff != sizeof(*tcp)) {
		__u32 ts;

		/* NOP NOP TIMESTAMP(10) is all Linux puts in a segment
		 * without SACK blocks. */
		if (doff != sizeof(*tcp) + 12 ||
		    skb_bytes(skb, l3->l4_off + sizeof(*tcp), &ts, 4) ||
		    ts != bpf_htonl(0x0101080a))
			return false;
	}
	seq = bpf_ntohl(tcp->seq);
	ack = bpf_ntohl(tcp->ack_seq);
	end = seq + len;
	key.family = l3->family;
	key.netns = tc_netns;
	if (dir == DIR_EGRESS) {
		key.lport = bpf_ntohs(tcp->source);
		key.rport = bpf_ntohs(tcp->dest);
		__builtin_memcpy(key.laddr, l3->saddr, 16);
		__builtin_memcpy(key.raddr, l3->daddr, 16);
	} else {
		key.lport = bpf_ntohs(tcp->dest);
		key.rport = bpf_ntohs(tcp->source);
		__builtin_memcpy(key.laddr, l3->daddr, 16);
		__builtin_memcpy(key.raddr, l3->saddr, 16);
	}
	v = bpf_map_lookup_elem(&conn_counts, &key);
	if (!v) {
		struct pkt_counts init = {};
		__u32 zero = 0;

		/* The entry starts with this packet's sequence state; the
		 * packet itself is reported (the third ACK of a handshake,
		 * the first after tracing started, a late one after the
		 * close), not counted. */
		d = &init.dir[idx & 1];
		if (len) {
			d->first_seq = seq;
			d->high_end = end;
			d->seen = 1;
		}
		d->last_ack = ack;
		d->last_win = win;
		d->acked = 1;
		d->last_seen = bpf_ktime_get_coarse_ns() >> 30;
		/* BPF_NOEXIST: another CPU may have made it meanwhile. */
		if (!bpf_map_update_elem(&conn_counts, &key, &init, BPF_NOEXIST))
			return false;
		v = bpf_map_lookup_elem(&conn_counts, &key);
		if (!v) {
			__u64 *n = bpf_map_lookup_elem(&count_overflow, &zero);

			if (n)
				__sync_fetch_and_add(n, 1);
			return false;
		}
	}
	d = &v->dir[idx & 1];
	if (len) {
		if (d->seen && SEQ_LEQ(end, d->high_end))
			return false; /* retransmission or out of order */
		if (!d->seen) {
			d->first_seq = seq;
			d->seen = 1;
		}
		d->high_end = end;
	} else if (d->acked) {
		if (ack == d->last_ack && win == d->last_win)
			return false; /* duplicate ACK */
		if (d->seen && seq == d->high_end - 1)
			return false; /* keepalive probe */
	}
	d->last_ack = ack;
	d->last_win = win;
	d->acked = 1;
	/* The sweep's clock: coarse (no clock read, the tick's time). */
	d->last_seen = bpf_ktime_get_coarse_ns() >> 30;
	__sync_fetch_and_add(&d->segs, 1);
	__sync_fetch_and_add(&d->bytes, len);
	return true;
}

/* handle_packet parses Ethernet (with up to two VLAN tags) or raw IP,
 * IPv4/IPv6 and the TCP header, and emits one packet_event. The payload
 * length is skb->len based (GSO super-packets carry IP length 0), capped by
 * the IP header's length when it has one (Ethernet padding). */
static __always_inline int handle_packet(struct __sk_buff *skb, __u8 dir)
{
	struct parsed_l3 l3 = {};
	struct packet_event *pe, *ev;
	struct iface_cfg *cfg;
	struct tcphdr tcp;
	__u32 ifindex = skb->ifindex;
	__u32 off = ETH_HLEN, doff, hdr_end, len;
	__u64 cookie = 0;
	__u32 zero = 0;
	__u16 proto;

	cfg = raw_ip_ifaces ? bpf_map_lookup_elem(&ifaces, &ifindex) : NULL;
	if (cfg && cfg->l2_len == 0) {
		off = 0;
		proto = bpf_ntohs(skb->protocol);
	} else {
		__be16 ethertype;

		if (skb_bytes(skb, 12, &ethertype, 2))
			return TC_ACT_UNSPEC;
		proto = bpf_ntohs(ethertype);
		for (int n = 0; n < 2 && (proto == ETH_P_8021Q || proto == ETH_P_8021AD); n++) {
			if (skb_bytes(skb, off + 2, &ethertype, 2))
				return TC_ACT_UNSPEC;
			proto = bpf_ntohs(ethertype);
			off += 4;
		}
	}

	if (proto == ETH_P_IP) {
		if (!parse_ipv4(skb, off, &l3))
			return TC_ACT_UNSPEC;
	} else if (proto == ETH_P_IPV6) {
		if (!parse_ipv6(skb, off, &l3))
			return TC_ACT_UNSPEC;
	} else {
		return TC_ACT_UNSPEC;
	}

	if (skb_bytes(skb, l3.l4_off, &tcp, sizeof(tcp)))
		return TC_ACT_UNSPEC;
	/* A SYN's socket cookie ties it to its SYN_SENT event. On lo the
	 * entry tc_lo_egress left is taken before any exit path below. */
	if ((((__u8 *)&tcp)[13] & (TCPHDR_SYN | TCPHDR_ACK)) == TCPHDR_SYN) {
		cookie = bpf_get_socket_cookie(skb);
		if (!cookie)
			cookie = take_lo_syn_cookie(&l3, &tcp);
	}
	if (!port_passes(bpf_ntohs(tcp.source), bpf_ntohs(tcp.dest)) ||
	    !hosts_pass(l3.family, l3.saddr, l3.daddr))
		return TC_ACT_UNSPEC;

	doff = tcp.doff * 4;
	if (doff < sizeof(tcp))
		return TC_ACT_UNSPEC;
	hdr_end = l3.l4_off + doff;
	len = skb->len > hdr_end ? skb->len - hdr_end : 0;
	if (l3.ip_payload) {
		__u32 by_ip = l3.ip_payload > doff ? l3.ip_payload - doff : 0;

		if (by_ip < len)
			len = by_ip;
	}

	if (count_packets && count_packet(skb, &l3, &tcp, doff, len, dir))
		return TC_ACT_UNSPEC;

	pe = bpf_map_lookup_elem(&packet_scratch, &zero);
	if (!pe)
		return TC_ACT_UNSPEC;
	__builtin_memset(pe, 0, sizeof(*pe));
	pe->kind = EVENT_PACKET;
	pe->family = l3.family;
	pe->dir = dir;
	pe->ifindex = ifindex;
	pe->ts_ns = bpf_ktime_get_ns();
	pe->cookie = cookie;
	__builtin_memcpy(pe->saddr, l3.saddr, 16);
	__builtin_memcpy(pe->daddr, l3.daddr, 16);
	pe->sport = bpf_ntohs(tcp.source);
	pe->dport = bpf_ntohs(tcp.dest);
	pe->seq = bpf_ntohl(tcp.seq);
	pe->ack = bpf_ntohl(tcp.ack_seq);
	pe->tcp_flags = ((__u8 *)&tcp)[13];
	pe->window = bpf_ntohs(tcp.window);
	pe->len = len;
	parse_tcp_options(skb, l3.l4_off + sizeof(tcp), doff - sizeof(tcp), pe);
	if (pe->sack_blocks) {
		ev = reserve(sizeof(*pe), EVENT_PACKET);
		if (!ev)
			return TC_ACT_UNSPEC;
		__builtin_memcpy(ev, pe, sizeof(*pe));
		submit(ev, sizeof(*pe));
	} else {
		ev = reserve(PACKET_EVENT_SHORT, EVENT_PACKET);
		if (!ev)
			return TC_ACT_UNSPEC;
		__builtin_memcpy(ev, pe, PACKET_EVENT_SHORT);
		submit(ev, PACKET_EVENT_SHORT);
	}
	return TC_ACT_UNSPEC;
}

/* tc_ingress: TC classifier for ingress, attached with TCX (kernel >=
 * 6.6); plain SEC("tc") so that cls_bpf can carry it on older kernels.
 * Reports TCP headers of received packets; never drops.
 * On loopback it is the only reporting hook: each packet passes egress and
 * ingress there, and ingress sees GSO packets after they are split, as
 * tcpdump does. */
SEC("tc")
int tc_ingress(struct __sk_buff *skb)
{
	return handle_packet(skb, DIR_INGRESS);
}

/* tc_egress: TC classifier for egress, as tc_ingress. Not attached to
 * loopback, where every packet also passes ingress. */
SEC("tc")
int tc_egress(struct __sk_buff *skb)
{
	return handle_packet(skb, DIR_EGRESS);
}

/* tc_lo_egress: TC classifier for loopback egress (kernel >= 5.1 for
 * skb->sk). Reports nothing: it remembers the cookie of the socket sending
 * each SYN, which lo ingress cannot see, so that the SYN is tied to its
 * socket's SYN_SENT event. Costs two loads for every other packet. */
SEC("tc")
int tc_lo_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct syn_key key = {};
	__u8 family = AF_INET; /* as on the wire */
	__u64 cookie;

	if (!sk || sk->state != BPF_TCP_SYN_SENT)
		return TC_ACT_UNSPEC;
	if (sk->family == AF_INET) {
		__u32 a = sk->src_ip4, b = sk->dst_ip4;

		__builtin_memcpy(key.saddr, &a, 4);
		__builtin_memcpy(key.daddr, &b, 4);
	} else if (sk->family == AF_INET6) {
		__u32 s0 = sk->src_ip6[0], s1 = sk->src_ip6[1], s2 = sk->src_ip6[2], s3 = sk->src_ip6[3];
		__u32 d0 = sk->dst_ip6[0], d1 = sk->dst_ip6[1], d2 = sk->dst_ip6[2], d3 = sk->dst_ip6[3];

		if (s0 == 0 && s1 == 0 && s2 == bpf_htonl(0xffff)) {
			/* v4-mapped: the wire carries IPv4 */
			__builtin_memcpy(key.saddr, &s3, 4);
			__builtin_memcpy(key.daddr, &d3, 4);
		} else {
			family = AF_INET6;
			__builtin_memcpy(&key.saddr[0], &s0, 4);
			__builtin_memcpy(&key.saddr[4], &s1, 4);
			__builtin_memcpy(&key.saddr[8], &s2, 4);
			__builtin_memcpy(&key.saddr[12], &s3, 4);
			__builtin_memcpy(&key.daddr[0], &d0, 4);
			__builtin_memcpy(&key.daddr[4], &d1, 4);
			__builtin_memcpy(&key.daddr[8], &d2, 4);
			__builtin_memcpy(&key.daddr[12], &d3, 4);
		}
	} else {
		return TC_ACT_UNSPEC;
	}
	key.sport = sk->src_port;
	key.dport = bpf_ntohs(sk->dst_port);
	/* A SYN the filters drop at ingress would never take its entry. */
	if (!port_passes(key.sport, key.dport) ||
	    !hosts_pass(family, key.saddr, key.daddr))
		return TC_ACT_UNSPEC;
	cookie = bpf_get_socket_cookie(skb);
	bpf_map_update_elem(&lo_syn_cookies, &key, &cookie, BPF_ANY);
	return TC_ACT_UNSPEC;
}
