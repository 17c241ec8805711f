#!/bin/bash
# The article's network (docs/design.md, The lab) in network namespaces: a router, two ISPs, a LAN and "the internet".
# Everything lives inside namespaces named PREFIX-*; nothing is ever created in the caller's namespace.
set -eEuo pipefail

readonly STATE_DIR=/run/wanbalance-lab
readonly ROLES=(rtr isp1 isp2 lan inet)

usage() {
    cat <<'EOF'
Usage: lab.sh COMMAND [ARGS]

  up PREFIX                 build the lab; prints its namespace names
  down PREFIX               kill every process in its namespaces and delete them (idempotent)
  gc                        remove labs whose owner process is gone
  ls                        list labs: PREFIX OWNER-PID alive|dead
  upstream PREFIX ISP down|up   ISP stops/starts forwarding to/from the internet
                                (its gateway address keeps answering pings)
  carrier PREFIX ISP down|up    set the ISP's "cust" port down/up (router's WAN loses carrier)
  loss PREFIX ISP PCT           drop PCT% (0-100) of packets the ISP forwards toward the internet;
                                0 removes the loss. A round trip through it loses about PCT%.
  counters PREFIX ISP           print "bcp38 N\nupstream N\nloss N" (packets dropped by each knob)

ISP is isp1 (Charter, router ether1) or isp2 (Integra, router ether2).
The owner of a lab is $LAB_OWNER_PID if set, else the process that ran "lab.sh up".

Topology (documentation ranges only):
  PREFIX-rtr   ether1 203.0.113.2/24  <-> PREFIX-isp1 cust 203.0.113.1/24
               ether2 198.51.100.2/24 <-> PREFIX-isp2 cust 198.51.100.1/24
               ether3 192.168.88.1/24 <-> PREFIX-lan  eth0 192.168.88.10/24 (+ .11-.40/32)
               ip_forward=1, strict rp_filter, no default route
  PREFIX-isp1  up 192.0.2.241/30 <-> PREFIX-inet isp1 192.0.2.242/30
  PREFIX-isp2  up 192.0.2.245/30 <-> PREFIX-inet isp2 192.0.2.246/30
  PREFIX-inet  lo: 192.0.2.10 (server), 192.0.2.53, 192.0.2.54 (probe targets)
EOF
}

die() { echo "lab.sh: $*" >&2; exit 1; }

check_prefix() {
    [[ "${1:-}" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$ ]] ||
        die "invalid lab prefix '${1:-}' (1-32 chars of A-Za-z0-9_.-)"
}

isp_customer_addr() {
    case "$1" in
        isp1) echo 203.0.113.2 ;;
        isp2) echo 198.51.100.2 ;;
        *) die "unknown ISP '$1' (expected isp1 or isp2)" ;;
    esac
}

ns_exists() { [[ -e "/run/netns/$1" ]]; }

# The start time (clock ticks since boot) tells a live owner from a recycled pid.
proc_start_time() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }            # drop "pid (comm) ", comm may contain spaces
    # shellcheck disable=SC2086
    set -- $stat
    echo "${20}"                 # field 22 of the full line
}

owner_alive() {
    local record=$1 pid start now
    read -r pid start <"$record" 2>/dev/null || return 1
    [[ -n "$pid" ]] || return 1
    now=$(proc_start_time "$pid") || return 1
    [[ "$now" == "$start" ]]
}

cmd_up() {
    local p=$1 role ns
    check_prefix "$p"
    for role in "${ROLES[@]}"; do
        if ns_exists "$p-$role"; then die "lab '$p' already exists ($p-$role)"; fi
    done

    # Record the owner before anything exists, so "gc" can always clean up after a crash.
    local owner=${LAB_OWNER_PID:-$PPID} start
    start=$(proc_start_time "$owner") || die "owner process $owner does not exist"
    mkdir -p "$STATE_DIR"
    echo "$owner $start" >"$STATE_DIR/$p"
    # shellcheck disable=SC2064  # $p is checked to be quote-free, expand it now
    trap "trap - ERR; cmd_down '$p' >/dev/null 2>&1; echo 'lab.sh: building lab $p failed; removed it' >&2" ERR

    # Few processes: each `ip -batch` does many steps, which keeps "up" fast on a loaded machine.
    for role in "${ROLES[@]}"; do echo "netns add $p-$role"; done | ip -batch -

    # New namespaces inherit IPv4 conf/all and conf/default from the host
    # (net.core.devconf_inherit_init_net=0): set every value the lab relies on,
    # before the interfaces exist so they get it from conf/default too.
    local common='"net.ipv4.ping_group_range=0 2147483647"
        net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.default.arp_ignore=0
        net.ipv4.conf.all.src_valid_mark=0 net.ipv4.conf.default.src_valid_mark=0
        net.ipv4.conf.all.accept_local=0 net.ipv4.conf.default.accept_local=0'
    common=${common//$'\n'/ }
    ip -batch - <<EOF
netns exec $p-rtr sysctl -q -w $common net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1
netns exec $p-isp1 sysctl -q -w $common net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
netns exec $p-isp2 sysctl -q -w $common net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
netns exec $p-lan sysctl -q -w $common net.ipv4.ip_forward=0 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
netns exec $p-inet sysctl -q -w $common net.ipv4.ip_forward=0 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
EOF

    # Run from inside the router namespace, and every device is created directly in the
    # namespace named by its "netns" (IFLA_NET_NS_FD): nothing passes through the host.
    # Distinct ifindexes on the two ends matter: the kernel treats a carrier change of a device
    # whose peer has the same ifindex as not urgent (linkwatch_urgent_event() compares ifindex
    # with iflink) and delays its operstate by up to a second.
    ip -n "$p-rtr" -batch - <<EOF
link add name ether1 index 11 type veth peer name cust index 21 netns $p-isp1
link add name ether2 index 12 type veth peer name cust index 22 netns $p-isp2
link add name ether3 index 13 type veth peer name eth0 index 23 netns $p-lan
link add name up index 31 netns $p-isp1 type veth peer name isp1 index 41 netns $p-inet
link add name up index 32 netns $p-isp2 type veth peer name isp2 index 42 netns $p-inet
link set lo up
addr add 203.0.113.2/24 dev ether1
addr add 198.51.100.2/24 dev ether2
addr add 192.168.88.1/24 dev ether3
link set ether1 up
link set ether2 up
link set ether3 up
netns exec $p-rtr sysctl -q -w net.ipv4.conf.lo.rp_filter=1 net.ipv4.conf.ether1.rp_filter=1 net.ipv4.conf.ether2.rp_filter=1 net.ipv4.conf.ether3.rp_filter=1
EOF

    {
        echo "link set lo up"
        echo "addr add 192.168.88.10/24 dev eth0"
        local i
        for ((i = 11; i <= 40; i++)); do echo "addr add 192.168.88.$i/32 dev eth0"; done
        echo "link set eth0 up"
        echo "route add default via 192.168.88.1 dev eth0"
    } | ip -n "$p-lan" -batch -

    ip -n "$p-inet" -batch - <<'EOF'
link set lo up
addr add 192.0.2.10/32 dev lo
addr add 192.0.2.53/32 dev lo
addr add 192.0.2.54/32 dev lo
addr add 192.0.2.242/30 dev isp1
addr add 192.0.2.246/30 dev isp2
link set isp1 up
link set isp2 up
route add 203.0.113.0/24 via 192.0.2.241 dev isp1
route add 198.51.100.0/24 via 192.0.2.245 dev isp2
EOF

    local isp cust_gw up_addr inet_addr
    for isp in isp1 isp2; do
        case $isp in
            isp1) cust_gw=203.0.113.1/24; up_addr=192.0.2.241/30; inet_addr=192.0.2.242 ;;
            isp2) cust_gw=198.51.100.1/24; up_addr=192.0.2.245/30; inet_addr=192.0.2.246 ;;
        esac
        ip -n "$p-$isp" -batch - <<EOF
link set lo up
addr add $cust_gw dev cust
addr add $up_addr dev up
link set dev cust up
link set dev up up
route add default via $inet_addr dev up
EOF
        nft_isp "$p" "$isp" <<EOF
table ip lab {
    counter bcp38_dropped { }
    counter upstream_dropped { }
    counter loss_dropped { }
    # BCP38: the ISP forwards only what its customer may send.
    chain bcp38 {
        type filter hook forward priority -10; policy accept;
        iifname "cust" ip saddr != $(isp_customer_addr "$isp") counter name "bcp38_dropped" drop
    }
    chain upstream {
        type filter hook forward priority 0; policy accept;
    }
    chain loss {
        type filter hook forward priority 10; policy accept;
    }
}
EOF
    done

    wait_links_up "$p"
    trap - ERR
    for role in "${ROLES[@]}"; do echo "$p-$role"; done
}

# Return once the router's links report operstate UP: wanbalanced reads their carrier at start,
# and a WAN that looks down for its first second would make every test begin with a failover.
wait_links_up() {
    local p=$1 tries line settled
    for ((tries = 0; ; tries++)); do
        settled=1
        while read -r line; do
            [[ "$line" == *": lo:"* || "$line" == *"state UP"* ]] || settled=0
        done < <(ip -n "$p-rtr" -o link show)
        ((settled)) && return 0
        ((tries < 100)) || die "lab $p: the router's links did not come up within 2 s"
        sleep 0.02
    done
}

nft_isp() { ip netns exec "$1-$2" nft -f -; }

# Never fails: every step tolerates the thing already being gone.
cmd_down() {
    local p=$1 role ns pid
    if ! [[ "$p" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$ ]]; then
        echo "lab.sh: no lab can be named '$p'; nothing to remove" >&2
        return 0
    fi
    # Find the processes with builtins only ([[ -ef ]] compares device and inode of the
    # namespace files): a plain scan of /proc beats five `ip netns pids` on a busy machine.
    local nsfiles=() f
    for role in "${ROLES[@]}"; do
        f="/run/netns/$p-$role"
        # A namespace file that is really our own (the host's) namespace: never kill in it.
        if [[ -e "$f" ]] && ! [[ "$f" -ef /proc/$$/ns/net ]]; then nsfiles+=("$f"); fi
    done
    local all_pids=()
    if ((${#nsfiles[@]})); then
        for f in /proc/[0-9]*; do
            pid=${f#/proc/}
            [[ "$pid" != "$$" ]] || continue
            for ns in "${nsfiles[@]}"; do
                if [[ "$f/ns/net" -ef "$ns" ]]; then all_pids+=("$pid"); break; fi
            done
        done
    fi
    if ((${#all_pids[@]})); then
        kill -TERM "${all_pids[@]}" 2>/dev/null || true
        local tries=0 alive
        while ((tries < 40)); do      # up to 2 s for a clean exit
            alive=()
            for pid in "${all_pids[@]}"; do
                if [[ -e "/proc/$pid/ns/net" ]]; then alive+=("$pid"); fi
            done
            ((${#alive[@]})) || break
            sleep 0.05
            tries=$((tries + 1))
        done
        if ((${#alive[@]})); then
            kill -KILL "${alive[@]}" 2>/dev/null || true
        fi
    fi
    for role in "${ROLES[@]}"; do
        if ns_exists "$p-$role"; then echo "netns del $p-$role"; fi
    done | ip -force -batch - >/dev/null 2>&1 || true
    rm -f "$STATE_DIR/$p"
    return 0
}

# Labs that have a record: "PREFIX". Namespaces of a lab whose record is lost are found by name.
lab_prefixes() {
    local f
    if [[ -d "$STATE_DIR" ]]; then
        for f in "$STATE_DIR"/*; do
            if [[ -f "$f" ]]; then basename "$f"; fi
        done
    fi
    return 0
}

cmd_gc() {
    local p ns
    for p in $(lab_prefixes); do
        if owner_alive "$STATE_DIR/$p"; then continue; fi
        echo "removing lab $p (owner gone)"
        cmd_down "$p" || true
    done
    # Orphans without a record: only the harness's own random names (wb + 6 hex digits).
    if [[ -d /run/netns ]]; then
        for ns in /run/netns/*; do
            ns=$(basename "$ns")
            if [[ "$ns" =~ ^(wb[0-9a-f]{6})-(rtr|isp1|isp2|lan|inet)$ ]]; then
                p=${BASH_REMATCH[1]}
                if [[ -f "$STATE_DIR/$p" ]]; then continue; fi
                echo "removing orphaned lab $p (no owner record)"
                cmd_down "$p" || true
            fi
        done
    fi
    return 0
}

cmd_ls() {
    local p pid start state
    for p in $(lab_prefixes); do
        read -r pid start <"$STATE_DIR/$p" || true
        if owner_alive "$STATE_DIR/$p"; then state=alive; else state=dead; fi
        echo "$p ${pid:-?} $state"
    done
}

cmd_upstream() {
    local p=$1 isp=$2 state=$3
    isp_customer_addr "$isp" >/dev/null
    ns_exists "$p-$isp" || die "no lab '$p'"
    case "$state" in
        down) nft_isp "$p" "$isp" <<'EOF'
flush chain ip lab upstream
add rule ip lab upstream iifname "up" counter name "upstream_dropped" drop
add rule ip lab upstream oifname "up" counter name "upstream_dropped" drop
EOF
            ;;
        up) echo 'flush chain ip lab upstream' | nft_isp "$p" "$isp" ;;
        *) die "upstream: expected down or up, got '$state'" ;;
    esac
}

cmd_carrier() {
    local p=$1 isp=$2 state=$3
    isp_customer_addr "$isp" >/dev/null
    ns_exists "$p-$isp" || die "no lab '$p'"
    case "$state" in
        down|up) ip -n "$p-$isp" link set cust "$state" ;;
        *) die "carrier: expected down or up, got '$state'" ;;
    esac
}

cmd_loss() {
    local p=$1 isp=$2 pct=$3
    isp_customer_addr "$isp" >/dev/null
    ns_exists "$p-$isp" || die "no lab '$p'"
    if ! [[ "$pct" =~ ^[0-9]+$ ]] || ((pct > 100)); then
        die "loss: PCT must be 0-100, got '$pct'"
    fi
    if ((pct == 0)); then
        echo 'flush chain ip lab loss' | nft_isp "$p" "$isp"
    elif ((pct == 100)); then     # "mod 100 < 100" is out of numgen's range for nft
        nft_isp "$p" "$isp" <<'EOF'
flush chain ip lab loss
add rule ip lab loss oifname "up" counter name "loss_dropped" drop
EOF
    else
        nft_isp "$p" "$isp" <<EOF
flush chain ip lab loss
add rule ip lab loss oifname "up" numgen random mod 100 < $pct counter name "loss_dropped" drop
EOF
    fi
}

cmd_counters() {
    local p=$1 isp=$2 name out
    isp_customer_addr "$isp" >/dev/null
    for name in bcp38 upstream loss; do
        out=$(ip netns exec "$p-$isp" nft list counter ip lab "${name}_dropped") ||
            die "no lab '$p'"
        [[ "$out" =~ packets\ ([0-9]+) ]] || die "cannot read counter ${name}_dropped"
        echo "$name ${BASH_REMATCH[1]}"
    done
}

main() {
    local cmd=${1:-}
    [[ -n "$cmd" ]] || { usage >&2; exit 2; }
    shift
    case "$cmd" in
        -h|--help|help) usage ;;
        up)       [[ $# -eq 1 ]] || die "usage: lab.sh up PREFIX"; cmd_up "$1" ;;
        down)     [[ $# -eq 1 ]] || die "usage: lab.sh down PREFIX"; cmd_down "$1" ;;
        gc)       cmd_gc ;;
        ls)       cmd_ls ;;
        upstream) [[ $# -eq 3 ]] || die "usage: lab.sh upstream PREFIX ISP down|up"; cmd_upstream "$@" ;;
        carrier)  [[ $# -eq 3 ]] || die "usage: lab.sh carrier PREFIX ISP down|up"; cmd_carrier "$@" ;;
        loss)     [[ $# -eq 3 ]] || die "usage: lab.sh loss PREFIX ISP PCT"; cmd_loss "$@" ;;
        counters) [[ $# -eq 2 ]] || die "usage: lab.sh counters PREFIX ISP"; cmd_counters "$@" ;;
        *) echo "lab.sh: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
