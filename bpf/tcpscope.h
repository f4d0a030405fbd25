/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcpscope event ABI: the one definition of every record the kernel side
 * writes to the ring buffer and of every map key/value Go fills in.
 * Go types are generated from this file by bpf2go (-type); never mirror
 * these structs by hand. Every event struct starts with `__u8 kind` so the
 * reader can dispatch on the first byte. Layouts are explicit (no implicit
 * padding) and sizes are multiples of 8.
 *
 * Records are cut short when their tail is empty: a packet_event without
 * SACK blocks ends before sack (PACKET_EVENT_SHORT bytes), a sock_event
 * without SOCK_HAS_OWNER before owner (SOCK_EVENT_SHORT bytes), and every
 * sock_event but a state change to CLOSE before counters (SOCK_EVENT_OWNER
 * bytes), and a CLOSE without packet counts before pkt (SOCK_EVENT_COUNTERS
 * bytes); the reader reads the missing tail as zeros. Every ring-buffer byte costs the
 * kernel: at 136 bytes a record touches three cache lines of ring memory
 * that nobody wrote for a whole ring's worth of records.
 */
#ifndef TCPSCOPE_H
#define TCPSCOPE_H

/* event_kind is the first byte of every ring-buffer record and the index of
 * the per-kind reservation-failure counter. */
enum event_kind {
	EVENT_PACKET = 1,     /* struct packet_event */
	EVENT_STATE = 2,      /* struct sock_event: TCP state transition */
	EVENT_RETRANSMIT = 3, /* struct sock_event: kernel retransmitted a segment */
	EVENT_RESET = 4,      /* struct sock_event: RST sent or received */
	EVENT_TIMEWAIT = 5,   /* struct sock_event: the timer of a TIME_WAIT socket */
	EVENT_PKT_COUNTS = 6, /* struct pkt_counts_event: packets counted, not reported (--packets control) */
	EVENT_KIND_MAX = 7,
};

/* tw_event says what happened to a TIME_WAIT socket's timer. A re-arm
 * (a segment arrived in TIME_WAIT) shows as TW_CANCELLED then TW_ARMED;
 * a TW_CANCELLED alone means the socket was killed early. */
enum tw_event {
	TW_ARMED = 1,     /* timer_start: TIME_WAIT begins (or is re-armed) */
	TW_EXPIRED = 2,   /* timer_expire_entry: TIME_WAIT ran out */
	TW_CANCELLED = 3, /* timer_cancel: killed early, or re-armed */
};

/* packet_dir says on which TC hook a packet was seen. */
enum packet_dir {
	DIR_INGRESS = 0,
	DIR_EGRESS = 1,
};

/* reset_dir says whether this host sent or received a reset. */
enum reset_dir {
	RESET_SENT = 0,
	RESET_RECEIVED = 1,
};

/* tcp_option_bit marks which TCP options a packet carried. */
enum tcp_option_bit {
	OPT_MSS = 1 << 0,
	OPT_WSCALE = 1 << 1,
	OPT_SACK_OK = 1 << 2,
	OPT_TIMESTAMP = 1 << 3,
	OPT_SACK = 1 << 4,
};

/* tcp_opt_code names one TCP option in packet_event.opt_order, 4 bits per
 * option in wire order (first option in the low bits; OPTC_END ends). */
enum tcp_opt_code {
	OPTC_END = 0,
	OPTC_NOP = 1,
	OPTC_MSS = 2,
	OPTC_WSCALE = 3,
	OPTC_SACK_OK = 4,
	OPTC_SACK = 5,
	OPTC_TIMESTAMP = 6,
	OPTC_EOL = 7,
	OPTC_OTHER = 8,
};

/* sock_event_flag is a bit set in sock_event.flags. */
enum sock_event_flag {
	SOCK_HAS_OWNER = 1 << 0,  /* owner holds the socket's owning process */
	SOCK_HAS_STATE = 1 << 1,  /* state holds the socket's TCP state */
	SOCK_HAS_REASON = 1 << 2, /* reason holds an enum sk_rst_reason value */
	/* srtt_us and snd_cwnd are set: only once the kernel has an RTT
	 * sample (srtt_us > 0); not on SYN_SENT, nor for listeners. */
	SOCK_HAS_TCPINFO = 1 << 3,
	/* counters holds the tcp_sock's counters: EVENT_STATE to TCP_CLOSE
	 * of a full TCP socket (not a listener) only. */
	SOCK_HAS_COUNTERS = 1 << 4,
	/* pkt holds the count map entry of the socket's connection, taken
	 * (and deleted) at its CLOSE (--packets control): what a separate
	 * EVENT_PKT_COUNTS record would have carried. */
	SOCK_HAS_PKT_COUNTS = 1 << 5,
};

/* tcp_counters_flag is a bit set in tcp_counters.flags: a field the
 * running kernel has (CO-RE, bpf_core_field_exists). */
enum tcp_counters_flag {
	COUNTERS_HAS_BYTES_SENT = 1 << 0,    /* bytes_sent (kernel >= 4.19) */
	COUNTERS_HAS_BYTES_RETRANS = 1 << 1, /* bytes_retrans (kernel >= 4.19) */
};

/* tcp_counters are a TCP socket's lifetime counters (struct tcp_sock, as
 * tcp_info reports them), read when the socket moves to CLOSE: final for
 * the connection, since a TIME_WAIT socket that follows sends only ACKs it
 * does not count. bytes_acked and bytes_received count sequence space,
 * as the kernel advances snd_una and rcv_nxt: the payload plus one for an
 * acknowledged SYN (bytes_acked) and one for a FIN (acknowledged, or
 * received). bytes_sent and bytes_retrans are payload only. Segments count
 * each MSS of a GSO/TSO skb (tcp_skb_pcount). */
struct tcp_counters {
	__u64 bytes_acked;    /* sequence space sent and acknowledged by the peer */
	__u64 bytes_received; /* sequence space received in order (the SYN not counted) */
	__u64 bytes_sent;     /* payload bytes sent, retransmissions included */
	__u64 bytes_retrans;  /* payload bytes retransmitted */
	__u32 segs_in;        /* segments received, pure ACKs included */
	__u32 segs_out;       /* segments sent, retransmissions included */
	__u32 data_segs_in;   /* segments received with payload */
	__u32 data_segs_out;  /* segments sent with payload */
	__u32 total_retrans;  /* segments retransmitted */
	__u32 flags;          /* enum tcp_counters_flag */
};

/* owner_flag is a bit set in owner.flags: a field of the owner that is not
 * known. The kernel always knows them all (0); Go seeds the owners of
 * sockets found at start-up from /proc, which knows no thread and maybe no
 * cgroup. */
enum owner_flag {
	OWNER_NO_TID = 1 << 0,    /* owner.pid (the thread id) is not known */
	OWNER_NO_CGROUP = 1 << 1, /* owner.cgroup_id is not known */
};

/* owner is the process that owns a socket, captured in process context
 * (connect, listen, send, receive, close), never at softirq time. */
struct owner {
	__u32 pid;       /* thread id of the task when the owner was recorded */
	__u32 tgid;      /* process id (what ps calls PID) */
	__u32 uid;
	__u32 flags;     /* enum owner_flag */
	__u64 cgroup_id; /* cgroup v2 id */
	char comm[16];
};

/* packet_event is one TCP header seen by the TC classifier. No payload. */
struct packet_event {
	__u8 kind;      /* EVENT_PACKET */
	__u8 family;    /* AF_INET or AF_INET6 */
	__u8 dir;       /* enum packet_dir */
	__u8 tcp_flags; /* header byte 13: FIN SYN RST PSH ACK URG ECE CWR */
	__u32 ifindex;
	__u64 ts_ns;    /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u8 saddr[16]; /* IPv4 uses the first 4 bytes */
	__u8 daddr[16];
	__u16 sport;    /* host byte order */
	__u16 dport;
	__u32 seq;
	__u32 ack;
	__u32 len;      /* TCP payload bytes */
	__u16 window;   /* raw header value, not scaled */
	__u16 options;  /* enum tcp_option_bit */
	__u16 mss;
	__u8 wscale;
	__u8 sack_blocks; /* SACK blocks in the option (up to 4 kept in sack) */
	__u32 ts_val;
	__u32 ts_ecr;
	__u64 opt_order;  /* enum tcp_opt_code, 4 bits each, up to 16 options */
	/* SYN without ACK only: cookie of the socket that sent it (skb->sk on
	 * egress and on veth ingress; on lo remembered by tc_lo_egress), 0
	 * otherwise. Ties a connecting socket's SYN to its SYN_SENT event. */
	__u64 cookie;
	/* SACK blocks: left and right edge of each. Last: a record without
	 * SACK blocks ends here (PACKET_EVENT_SHORT). */
	__u32 sack[8];
};

/* PACKET_EVENT_SHORT is the size of a packet_event with no SACK blocks. */
#define PACKET_EVENT_SHORT __builtin_offsetof(struct packet_event, sack)

/* pkt_dir_counts are one direction's counted packets and the sequence
 * state the classifier's "suspicious" test needs. */
struct pkt_dir_counts {
	__u64 bytes;     /* payload bytes of the counted segments */
	__u32 segs;      /* segments counted (a GSO super-packet counts one, as tcpdump shows it) */
	__u32 first_seq; /* sequence number of the first counted payload byte */
	__u32 high_end;  /* highest sequence end of payload seen (counted) */
	__u32 last_ack;  /* ack of the last counted segment */
	__u16 last_win;  /* raw window of the last counted segment */
	__u8 seen;       /* 1: first_seq and high_end are set (payload was counted) */
	__u8 acked;      /* 1: last_ack and last_win are set */
	/* bpf_ktime_get_coarse_ns() >> 30 (CLOCK_MONOTONIC in units of
	 * 2^30 ns, about 1.07 s) when this direction last counted a packet or
	 * made the entry, 0 before: Go sweeps the entries idle too long, which
	 * no socket will flush (no local socket: forwarded traffic). */
	__u32 last_seen;
};

/* pkt_counts is the value of the count map: [0] what the local end sent
 * (egress), [1] what it received (ingress). */
struct pkt_counts {
	struct pkt_dir_counts dir[2];
};

/* sock_event is a socket-level event: state change, retransmit or reset. */
struct sock_event {
	__u8 kind;      /* EVENT_STATE, EVENT_RETRANSMIT or EVENT_RESET */
	__u8 family;
	__u8 old_state; /* EVENT_STATE: state before the transition */
	__u8 state;     /* new state (EVENT_STATE) or current state */
	__u32 netns;    /* network namespace inode */
	__u64 ts_ns;
	__u64 cookie;   /* socket cookie, 0 when no socket was involved */
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 lport;    /* host byte order */
	__u16 rport;
	__u32 seq;      /* EVENT_RETRANSMIT: first sequence number */
	__u32 len;      /* EVENT_RETRANSMIT: payload bytes (SYN and FIN not counted) */
	__u32 reason;   /* EVENT_RESET: enum sk_rst_reason when SOCK_HAS_REASON */
	__u8 reset_dir; /* EVENT_RESET: enum reset_dir */
	/* EVENT_RETRANSMIT: flags of the retransmitted segment; EVENT_RESET
	 * sent in reply to a segment: that segment's flags (0 for an active
	 * reset, which answers none). */
	__u8 tcp_flags;
	__u8 flags;     /* enum sock_event_flag */
	__u8 tw_event;  /* EVENT_TIMEWAIT: enum tw_event; state holds tw_substate */
	/* EVENT_RETRANSMIT: segments retransmitted, tcp_skb_pcount(skb): a
	 * GSO/TSO skb counts one per MSS, as the kernel's TcpRetransSegs. */
	__u16 segs;
	__u8 _pad[2];
	__u32 srtt_us;  /* EVENT_STATE, SOCK_HAS_TCPINFO: smoothed RTT, in us */
	__u32 snd_cwnd; /* EVENT_STATE, SOCK_HAS_TCPINFO: congestion window, in segments */
	/* SOCK_HAS_OWNER only (zero in a record that carries counters but no
	 * owner). A record without owner and counters ends here
	 * (SOCK_EVENT_SHORT). */
	struct owner owner;
	/* SOCK_HAS_COUNTERS only: a state change to CLOSE. Every other
	 * record ends before (SOCK_EVENT_OWNER), so the nine other state
	 * changes of a connection do not pay for it. */
	struct tcp_counters counters;
	/* SOCK_HAS_PKT_COUNTS only: a CLOSE whose connection had a count map
	 * entry. Last: a CLOSE without ends before (SOCK_EVENT_COUNTERS). */
	struct pkt_counts pkt;
};

/* SOCK_EVENT_SHORT is the size of a sock_event without SOCK_HAS_OWNER. */
#define SOCK_EVENT_SHORT __builtin_offsetof(struct sock_event, owner)
/* SOCK_EVENT_OWNER is the size of a sock_event with an owner and without
 * SOCK_HAS_COUNTERS. */
#define SOCK_EVENT_OWNER __builtin_offsetof(struct sock_event, counters)
/* SOCK_EVENT_COUNTERS is the size of a CLOSE sock_event without
 * SOCK_HAS_PKT_COUNTS. */
#define SOCK_EVENT_COUNTERS __builtin_offsetof(struct sock_event, pkt)

/* listener_key finds the listening socket(s) of a port, so that a child
 * socket created in softirq context inherits the process that listens. */
struct listener_key {
	__u32 netns;
	__u16 port;
	__u16 _pad;
};

/* listener_owner is the owner of the listening sockets of one port. With
 * SO_REUSEPORT several sockets share the port: count tracks them, and when
 * they belong to different processes the owner is ambiguous and children
 * get theirs at their first send or receive instead. Go seeds it for
 * listeners that existed before tracing. */
struct listener_owner {
	struct owner owner;
	__s32 count;
	__u32 ambiguous;
};

/* host_key is an LPM-trie key: IPv4 is stored v4-mapped (::ffff:a.b.c.d). */
struct host_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* pkt_key identifies a connection as its local end sees it, in the
 * --packets control count map: local is the source of an egress packet
 * and the destination of an ingress one; the socket side builds the same
 * key from the socket (a v4-mapped IPv6 socket as IPv4, as on the wire).
 * IPv4 uses the first 4 bytes of each address. netns keeps two namespaces
 * with the same 4-tuple apart: the classifier puts the namespace of the
 * interfaces it is attached to (tc_netns: one tracer hooks the interfaces
 * of one namespace), the socket side the socket's own. */
struct pkt_key {
	__u8 family;
	__u8 _pad;
	__u16 lport;    /* host byte order */
	__u16 rport;
	__u16 _pad2;
	__u32 netns;    /* network namespace inode */
	__u32 _pad3;
	__u8 laddr[16];
	__u8 raddr[16];
};


/* pkt_counts_event is a count map entry flushed (read and deleted): at the
 * socket's CLOSE, at the end of TIME_WAIT, when the socket is destroyed
 * (with its cookie), or by Go (cookie 0: at exit, and when it sweeps
 * entries idle too long). An entry is flushed once, then deleted: a
 * connection's records (one per entry it had) add up. */
struct pkt_counts_event {
	__u8 kind;      /* EVENT_PKT_COUNTS */
	__u8 family;
	__u8 _pad[2];
	__u32 netns;    /* the flushing socket's namespace; 0 from Go's drain */
	__u64 ts_ns;
	__u64 cookie;   /* the flushing socket's cookie; 0 from Go's drain */
	struct pkt_key key;
	struct pkt_counts counts;
};

/* iface_cfg describes how to parse packets of one interface. */
struct iface_cfg {
	__u8 l2_len; /* 14 for Ethernet-like devices (lo included), 0 for raw IP */
	__u8 _pad[3];
};

#endif /* TCPSCOPE_H */
