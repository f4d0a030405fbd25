package tracer

// The BPF objects are generated from bpf/ with the pinned clang-19 and
// committed; `make generate` reruns this and `make check-generate` fails on
// any difference.
//go:generate go tool bpf2go -cc clang-19 -target bpfel -type packet_event -type sock_event -type owner -type event_kind -type packet_dir -type reset_dir -type tcp_option_bit -type sock_event_flag -type tcp_opt_code -type tw_event -type host_key -type iface_cfg -type listener_key -type listener_owner -type owner_flag -type tcp_counters -type tcp_counters_flag -type pkt_counts_event -type pkt_key -type pkt_counts -type pkt_dir_counts tcpscope ../bpf/tcpscope.c -- -I../bpf -I../bpf/headers -nostdinc -O2 -g -Wall -Werror -mcpu=v3
