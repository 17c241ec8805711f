#!/bin/bash
# The article's network (docs/design.md, The lab) in network namespaces: a router, two ISPs, a LAN and "the internet".
# Everything lives inside namespaces named PREFIX-*; nothing is ever created in the caller's namespace.
set -eEuo pipefail

readonly STATE_DIR=/run/wanbalance-lab
# Each lab's private files (dnsmasq's pid, log and lease files): "_run" is no valid PREFIX.
readonly RUN_DIR=$STATE_DIR/_run
readonly ROLES=(rtr isp1 isp2 lan inet)
# The HA pair lab (tests/integration/labha.py) builds its own namespaces: a switch and two
# routers besides isp1, isp2, lan and inet. "down" and "gc" remove those too.
readonly HA_ROLES=(sw rtrA rtrB)
# isp2's router advertisements: an RA every 5-20 s (dnsmasq's first minute; then every 7.5-10 s)
# with a router lifetime of 30 s, so the route never lapses between two of them.
readonly RA_PARAM=10,30

usage() {
    cat <<'EOF'
Usage: lab.sh COMMAND [ARGS]

  up PREFIX                 build the lab; prints its namespace names
  down PREFIX               kill every process in its namespaces (dnsmasq too) and delete them
                            (idempotent; an HA pair lab's PREFIX-sw, -rtrA, -rtrB as well)
  gc                        remove labs whose owner process is gone
  ls                        list labs: PREFIX OWNER-PID alive|dead
  upstream PREFIX ISP down|up [FAMILY]
                            ISP stops/starts forwarding to/from the internet
                            (its gateway address keeps answering pings)
  carrier PREFIX ISP down|up    set the ISP's "cust" port down/up (router's WAN loses carrier;
                                both families)
  loss PREFIX ISP PCT [FAMILY]  drop PCT% (0-100) of packets the ISP forwards toward the
                                internet; 0 removes the loss. A round trip loses about PCT%.
  counters PREFIX ISP [FAMILY]  print "bcp38 N\nupstream N\nloss N" (packets dropped by each knob)
  ra PREFIX isp2 change     isp2's router is replaced: the old one says goodbye (an RA with router
                            lifetime 0), a new link-local address announces itself; prints it
  accept_ra PREFIX N [IFACE]    set the router's net.ipv6.conf.IFACE.accept_ra (default ether2)

ISP is isp1 (Charter, router ether1) or isp2 (Integra, router ether2).
FAMILY is ipv4 or ipv6; without it a knob acts on (a counter sums) both.
The owner of a lab is $LAB_OWNER_PID if set, else the process that ran "lab.sh up".

Topology (documentation ranges only):
  PREFIX-rtr   ether1 203.0.113.2/24  2001:db8:1::2/64 <-> PREFIX-isp1 cust 203.0.113.1/24
                                                          2001:db8:1::1/64, fe80::1
               ether2 198.51.100.2/24 SLAAC 2001:db8:2::/64 <-> PREFIX-isp2 cust 198.51.100.1/24
                                                          2001:db8:2::1/64, fe80::2 (sends RAs)
               ether3 192.168.88.1/24 fd00:88::1/64 <-> PREFIX-lan eth0 192.168.88.10/24
                    (+ .11-.40/32) fd00:88::10/64 (+ fd00:88::11-fd00:88::40/128)
               ip_forward=1, strict rp_filter, no IPv4 default route;
               IPv6 forwarding=1, accept_ra=2 on ether1 and ether2, default route only from
               isp2's RA (proto ra, via its link-local address)
  PREFIX-isp1  up 192.0.2.241/30 2001:db8:ff:1::1/64 <-> PREFIX-inet isp1 192.0.2.242/30
                                                           2001:db8:ff:1::2/64
  PREFIX-isp2  up 192.0.2.245/30 2001:db8:ff:2::1/64 <-> PREFIX-inet isp2 192.0.2.246/30
                                                           2001:db8:ff:2::2/64
  PREFIX-inet  lo: 192.0.2.10 2001:db8:ff::10 (server), 192.0.2.53 192.0.2.54 2001:db8:ff::53
               2001:db8:ff::54 (probe targets)
ISPs drop forwarded packets from "cust" whose source is not their customer's (BCP38):
isp1 203.0.113.2 and 2001:db8:1::/64, isp2 198.51.100.2 and 2001:db8:2::/64.
No DAD anywhere (accept_dad=0): every address is usable at once.
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

isp_customer_prefix6() {
    case "$1" in
        isp1) echo 2001:db8:1::/64 ;;
        isp2) echo 2001:db8:2::/64 ;;
        *) die "unknown ISP '$1' (expected isp1 or isp2)" ;;
    esac
}

# The nft families a knob acts on: "ip ip6" for both, or the one named.
nft_families() {
    case "${1:-}" in
        "") echo "ip ip6" ;;
        ipv4) echo ip ;;
        ipv6) echo ip6 ;;
        *) die "expected ipv4 or ipv6, got '$1'" ;;
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
    command -v dnsmasq >/dev/null ||
        die "dnsmasq not found: isp2 announces IPv6 by router advertisement (apt-get install dnsmasq-base)"

    # Record the owner before anything exists, so "gc" can always clean up after a crash.
    local owner=${LAB_OWNER_PID:-$PPID} start
    start=$(proc_start_time "$owner") || die "owner process $owner does not exist"
    mkdir -p "$STATE_DIR"
    echo "$owner $start" >"$STATE_DIR/$p"
    # shellcheck disable=SC2064  # $p is checked to be quote-free, expand it now
    trap "trap - ERR; cmd_down '$p' >/dev/null 2>&1; echo 'lab.sh: building lab $p failed; removed it' >&2" ERR
    mkdir -p "$RUN_DIR/$p"

    # Few processes: each `ip -batch` does many steps, which keeps "up" fast on a loaded machine.
    for role in "${ROLES[@]}"; do echo "netns add $p-$role"; done | ip -batch -

    # New namespaces inherit IPv4 conf/all and conf/default from the host
    # (net.core.devconf_inherit_init_net=0) and get IPv6's compiled-in defaults: set every value
    # the lab relies on, before the interfaces exist so they get it from conf/default too.
    # No DAD: an address is usable the moment it is added (no 1 s "tentative" wait).
    local common='"net.ipv4.ping_group_range=0 2147483647"
        net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.default.arp_ignore=0
        net.ipv4.conf.all.src_valid_mark=0 net.ipv4.conf.default.src_valid_mark=0
        net.ipv4.conf.all.accept_local=0 net.ipv4.conf.default.accept_local=0
        net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0'
    common=${common//$'\n'/ }
    local fwd='net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1'
    local host='net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0'
    # The ISPs keep their IPv6 addresses while "carrier" takes their customer port down (it is
    # an admin down on their side, which would otherwise delete them): the router sees only the
    # carrier go and come back, as with a pulled cable.
    local keep='net.ipv6.conf.all.keep_addr_on_down=1 net.ipv6.conf.default.keep_addr_on_down=1'
    ip -batch - <<EOF
netns exec $p-rtr sysctl -q -w $common $fwd net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1
netns exec $p-isp1 sysctl -q -w $common $fwd $keep net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
netns exec $p-isp2 sysctl -q -w $common $fwd $keep net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
netns exec $p-lan sysctl -q -w $common $host net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
netns exec $p-inet sysctl -q -w $common $host net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
EOF

    # Run from inside the router namespace, and every device is created directly in the
    # namespace named by its "netns" (IFLA_NET_NS_FD): nothing passes through the host.
    # Distinct ifindexes on the two ends matter: the kernel treats a carrier change of a device
    # whose peer has the same ifindex as not urgent (linkwatch_urgent_event() compares ifindex
    # with iflink) and delays its operstate by up to a second.
    # accept_ra=2: a forwarding router ignores router advertisements unless told to take them.
    ip -n "$p-rtr" -batch - <<EOF
link add name ether1 index 11 type veth peer name cust index 21 netns $p-isp1
link add name ether2 index 12 type veth peer name cust index 22 netns $p-isp2
link add name ether3 index 13 type veth peer name eth0 index 23 netns $p-lan
link add name up index 31 netns $p-isp1 type veth peer name isp1 index 41 netns $p-inet
link add name up index 32 netns $p-isp2 type veth peer name isp2 index 42 netns $p-inet
link set lo up
addr add 203.0.113.2/24 dev ether1
addr add 2001:db8:1::2/64 dev ether1
addr add 198.51.100.2/24 dev ether2
addr add 192.168.88.1/24 dev ether3
addr add fd00:88::1/64 dev ether3
netns exec $p-rtr sysctl -q -w net.ipv4.conf.lo.rp_filter=1 net.ipv4.conf.ether1.rp_filter=1 net.ipv4.conf.ether2.rp_filter=1 net.ipv4.conf.ether3.rp_filter=1 net.ipv6.conf.ether1.accept_ra=2 net.ipv6.conf.ether2.accept_ra=2
link set ether1 up
link set ether2 up
link set ether3 up
EOF

    {
        echo "link set lo up"
        echo "addr add 192.168.88.10/24 dev eth0"
        echo "addr add fd00:88::10/64 dev eth0"
        local i
        for ((i = 11; i <= 40; i++)); do echo "addr add 192.168.88.$i/32 dev eth0"; done
        for ((i = 0x11; i <= 0x40; i++)); do printf 'addr add fd00:88::%x/128 dev eth0\n' "$i"; done
        echo "link set eth0 up"
        echo "route add default via 192.168.88.1 dev eth0"
        echo "route add default via fd00:88::1 dev eth0"
    } | ip -n "$p-lan" -batch -

    ip -n "$p-inet" -batch - <<'EOF'
link set lo up
addr add 192.0.2.10/32 dev lo
addr add 192.0.2.53/32 dev lo
addr add 192.0.2.54/32 dev lo
addr add 2001:db8:ff::10/128 dev lo
addr add 2001:db8:ff::53/128 dev lo
addr add 2001:db8:ff::54/128 dev lo
addr add 192.0.2.242/30 dev isp1
addr add 192.0.2.246/30 dev isp2
addr add 2001:db8:ff:1::2/64 dev isp1
addr add 2001:db8:ff:2::2/64 dev isp2
link set isp1 up
link set isp2 up
route add 203.0.113.0/24 via 192.0.2.241 dev isp1
route add 198.51.100.0/24 via 192.0.2.245 dev isp2
route add 2001:db8:1::/64 via 2001:db8:ff:1::1 dev isp1
route add 2001:db8:2::/64 via 2001:db8:ff:2::1 dev isp2
EOF

    local isp n
    for isp in isp1 isp2; do
        n=${isp#isp}
        # The customer port's link-local address is fixed (fe80::1, fe80::2): a gateway6 can name
        # it, and "ra change" can give isp2's router a new one.
        ip -n "$p-$isp" -batch - <<EOF
link set lo up
link set dev cust addrgenmode none
addr add fe80::$n/64 dev cust
addr add $(isp_customer_gateway "$isp")/24 dev cust
addr add 2001:db8:$n::1/64 dev cust
addr add $(isp_up_addr "$isp")/30 dev up
addr add 2001:db8:ff:$n::1/64 dev up
link set dev up up
route add default via $(isp_inet_addr "$isp") dev up
route add default via 2001:db8:ff:$n::2 dev up
EOF
        nft_isp "$p" "$isp" <<EOF
$(isp_nft_table ip "$isp" "ip saddr != $(isp_customer_addr "$isp")")
$(isp_nft_table ip6 "$isp" "ip6 saddr != $(isp_customer_prefix6 "$isp")")
EOF
    done
    # dnsmasq listens before isp2's port comes up: the router solicits the moment it sees
    # carrier, and is answered at once (~30 ms) instead of at dnsmasq's first unsolicited RA.
    start_ra "$p" "$RA_PARAM"
    ip -n "$p-isp1" link set dev cust up
    ip -n "$p-isp2" link set dev cust up

    wait_links_up "$p"
    trap - ERR
    for role in "${ROLES[@]}"; do echo "$p-$role"; done
}

isp_customer_gateway() { case "$1" in isp1) echo 203.0.113.1 ;; isp2) echo 198.51.100.1 ;; esac; }
isp_up_addr() { case "$1" in isp1) echo 192.0.2.241 ;; isp2) echo 192.0.2.245 ;; esac; }
isp_inet_addr() { case "$1" in isp1) echo 192.0.2.242 ;; isp2) echo 192.0.2.246 ;; esac; }

# One ISP's table for one family ("ip" or "ip6"): the same chains and counters in both.
isp_nft_table() {
    local family=$1 isp=$2 spoofed=$3
    cat <<EOF
table $family lab {
    counter bcp38_dropped { }
    counter upstream_dropped { }
    counter loss_dropped { }
    # BCP38: the ISP forwards only what its customer may send.
    chain bcp38 {
        type filter hook forward priority -10; policy accept;
        iifname "cust" $spoofed counter name "bcp38_dropped" drop
    }
    chain upstream {
        type filter hook forward priority 0; policy accept;
    }
    chain loss {
        type filter hook forward priority 10; policy accept;
    }
}
EOF
}

# isp2's router advertisements: dnsmasq in the isp2 namespace, RA only (no DNS, no DHCP),
# every file of its own under the lab's run dir, nothing read from or written to the host's.
# RA_PARAM is "INTERVAL,ROUTER_LIFETIME" (lifetime 0: the router says it is no default router).
start_ra() {
    local p=$1 param=$2 dir=$RUN_DIR/$1
    ip netns exec "$p-isp2" dnsmasq --conf-file=/dev/null --port=0 --no-resolv --no-hosts \
        --interface=cust --bind-interfaces --enable-ra --dhcp-range=2001:db8:2::,ra-only,64 \
        --ra-param="cust,$param" --pid-file="$dir/dnsmasq.pid" \
        --dhcp-leasefile="$dir/dnsmasq.leases" --log-facility="$dir/dnsmasq.log" \
        --user=nobody --group=nogroup
}

stop_ra() {
    local pidfile=$RUN_DIR/$1/dnsmasq.pid pid tries
    read -r pid 2>/dev/null <"$pidfile" || return 0
    rm -f "$pidfile"
    # Only a process that really is in this lab's isp2 namespace (the pid may have been reused).
    [[ -e "/proc/$pid/ns/net" && "/proc/$pid/ns/net" -ef "/run/netns/$1-isp2" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((tries = 0; tries < 100; tries++)); do
        [[ -e "/proc/$pid/ns/net" ]] || return 0     # gone, or a zombie nobody reaped yet
        sleep 0.01
    done
    kill -KILL "$pid" 2>/dev/null || true
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
    for role in "${ROLES[@]}" "${HA_ROLES[@]}"; do
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
    for role in "${ROLES[@]}" "${HA_ROLES[@]}"; do
        if ns_exists "$p-$role"; then echo "netns del $p-$role"; fi
    done | ip -force -batch - >/dev/null 2>&1 || true
    rm -f "$STATE_DIR/$p"
    rm -rf "${RUN_DIR:?}/$p"
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
            if [[ "$ns" =~ ^(wb[0-9a-f]{6})-(rtr|isp1|isp2|lan|inet|sw|rtrA|rtrB)$ ]]; then
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
    local p=$1 isp=$2 state=$3 family fams script=""
    isp_customer_addr "$isp" >/dev/null
    fams=$(nft_families "${4:-}")
    ns_exists "$p-$isp" || die "no lab '$p'"
    for family in $fams; do
        case "$state" in
            down) script+="flush chain $family lab upstream
add rule $family lab upstream iifname \"up\" counter name \"upstream_dropped\" drop
add rule $family lab upstream oifname \"up\" counter name \"upstream_dropped\" drop
" ;;
            up) script+="flush chain $family lab upstream
" ;;
            *) die "upstream: expected down or up, got '$state'" ;;
        esac
    done
    nft_isp "$p" "$isp" <<<"$script"
}

# The ISP's customer-port link-local address now: fe80::1 for isp1; isp2's changes with "ra".
isp_link_local() {
    local p=$1 isp=$2 gen
    if [[ "$isp" == isp1 ]]; then echo fe80::1; return; fi
    read -r gen 2>/dev/null <"$RUN_DIR/$p/ra-generation" || gen=0
    ra_router_addr "$gen"
}

cmd_carrier() {
    local p=$1 isp=$2 state=$3
    isp_customer_addr "$isp" >/dev/null
    ns_exists "$p-$isp" || die "no lab '$p'"
    case "$state" in
        down) ip -n "$p-$isp" link set cust down ;;
        # An admin down deletes the link-local address even with keep_addr_on_down (addrgenmode
        # none makes no new one): put it back before the port comes up, so the router's first
        # solicitation after its carrier returns is answered from the ISP router's own address.
        up) printf 'addr replace %s/64 dev cust\nlink set cust up\n' "$(isp_link_local "$p" "$isp")" |
                ip -n "$p-$isp" -batch - ;;
        *) die "carrier: expected down or up, got '$state'" ;;
    esac
}

cmd_loss() {
    local p=$1 isp=$2 pct=$3 family fams script=""
    isp_customer_addr "$isp" >/dev/null
    fams=$(nft_families "${4:-}")
    ns_exists "$p-$isp" || die "no lab '$p'"
    if ! [[ "$pct" =~ ^[0-9]+$ ]] || ((pct > 100)); then
        die "loss: PCT must be 0-100, got '$pct'"
    fi
    for family in $fams; do
        script+="flush chain $family lab loss
"
        if ((pct == 100)); then     # "mod 100 < 100" is out of numgen's range for nft
            script+="add rule $family lab loss oifname \"up\" counter name \"loss_dropped\" drop
"
        elif ((pct > 0)); then
            script+="add rule $family lab loss oifname \"up\" numgen random mod 100 < $pct counter name \"loss_dropped\" drop
"
        fi
    done
    nft_isp "$p" "$isp" <<<"$script"
}

# One `nft list counters` for all of them; a family's figures, or both families' summed.
cmd_counters() {
    local p=$1 isp=$2 fams line family="" name="" out
    isp_customer_addr "$isp" >/dev/null
    fams=" $(nft_families "${3:-}") "
    out=$(ip netns exec "$p-$isp" nft list counters 2>/dev/null) || die "no lab '$p'"
    local -A sum=([bcp38]=0 [upstream]=0 [loss]=0) seen=()
    while read -r line; do
        if [[ "$line" =~ ^table\ ([a-z0-9]+)\ lab\ \{ ]]; then
            family=${BASH_REMATCH[1]}
        elif [[ "$line" =~ ^table\  ]]; then
            family=""
        elif [[ "$line" =~ ^counter\ ([a-z0-9]+)_dropped\ \{ ]]; then
            name=${BASH_REMATCH[1]}
        elif [[ "$line" =~ ^packets\ ([0-9]+) && -n "$family" && "$fams" == *" $family "* ]]; then
            [[ -n "${sum[$name]+x}" ]] || continue
            sum[$name]=$((sum[$name] + BASH_REMATCH[1]))
            seen[$family.$name]=1
        fi
    done <<<"$out"
    for family in $fams; do
        for name in bcp38 upstream loss; do
            [[ -n "${seen[$family.$name]:-}" ]] || die "cannot read counter $family lab ${name}_dropped"
        done
    done
    for name in bcp38 upstream loss; do echo "$name ${sum[$name]}"; done
}

# isp2's router is replaced. The old one leaves as RFC 4861 6.2.5 asks (an RA with router
# lifetime 0, so hosts drop it at once instead of after the lifetime), then a router with
# another link-local address starts advertising. dnsmasq sends its first RA about 1 s after it
# starts, so this takes about 2 s; on return the new router has sent its first RA.
# Prints the new router's address.
cmd_ra() {
    local p=$1 isp=$2 action=$3 dir=$RUN_DIR/$1 gen old new
    [[ "$isp" == isp2 ]] || die "ra: only isp2 sends router advertisements, not '$isp'"
    [[ "$action" == change ]] || die "ra: expected change, got '$action'"
    ns_exists "$p-isp2" || die "no lab '$p'"
    read -r gen 2>/dev/null <"$dir/ra-generation" || gen=0
    old=$(ra_router_addr "$gen")
    new=$(ra_router_addr $((gen + 1)))
    stop_ra "$p"
    start_ra "$p" 0,0
    wait_ra_sent "$p" || die "ra: isp2's goodbye advertisement was not sent within 5 s"
    stop_ra "$p"
    ip -n "$p-isp2" -batch - <<EOF
addr del $old/64 dev cust
addr add $new/64 dev cust
EOF
    echo $((gen + 1)) >"$dir/ra-generation"
    start_ra "$p" "$RA_PARAM"
    wait_ra_sent "$p" || die "ra: isp2's new router did not advertise within 5 s"
    echo "$new"
}

# fe80::2 for the first router, then fe80::2:1, fe80::2:2, ...
ra_router_addr() {
    if (($1 == 0)); then echo fe80::2; else printf 'fe80::2:%x\n' "$1"; fi
}

# Waits until the running dnsmasq has logged an advertisement of its own.
wait_ra_sent() {
    local pidfile=$RUN_DIR/$1/dnsmasq.pid log=$RUN_DIR/$1/dnsmasq.log pid tries
    read -r pid <"$pidfile" || return 1
    for ((tries = 0; tries < 250; tries++)); do
        if grep -q "^.* dnsmasq-dhcp\[$pid\]: RTR-ADVERT(cust)" "$log" 2>/dev/null; then return 0; fi
        sleep 0.02
    done
    return 1
}

cmd_accept_ra() {
    local p=$1 value=$2 iface=${3:-ether2}
    ns_exists "$p-rtr" || die "no lab '$p'"
    [[ "$value" =~ ^[012]$ ]] || die "accept_ra: expected 0, 1 or 2, got '$value'"
    [[ "$iface" =~ ^ether[123]$ ]] || die "accept_ra: expected ether1, ether2 or ether3, got '$iface'"
    ip netns exec "$p-rtr" sysctl -q -w "net.ipv6.conf.$iface.accept_ra=$value"
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
        upstream) [[ $# -eq 3 || $# -eq 4 ]] || die "usage: lab.sh upstream PREFIX ISP down|up [ipv4|ipv6]"
                  cmd_upstream "$@" ;;
        carrier)  [[ $# -eq 3 ]] || die "usage: lab.sh carrier PREFIX ISP down|up"; cmd_carrier "$@" ;;
        loss)     [[ $# -eq 3 || $# -eq 4 ]] || die "usage: lab.sh loss PREFIX ISP PCT [ipv4|ipv6]"
                  cmd_loss "$@" ;;
        counters) [[ $# -eq 2 || $# -eq 3 ]] || die "usage: lab.sh counters PREFIX ISP [ipv4|ipv6]"
                  cmd_counters "$@" ;;
        ra)       [[ $# -eq 3 ]] || die "usage: lab.sh ra PREFIX isp2 change"; cmd_ra "$@" ;;
        accept_ra) [[ $# -eq 2 || $# -eq 3 ]] || die "usage: lab.sh accept_ra PREFIX 0|1|2 [IFACE]"
                  cmd_accept_ra "$@" ;;
        *) echo "lab.sh: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
