#!/bin/sh
# keepalived notify script for a wanbalance router pair (issue 14). keepalived.conf calls it
# for the sync group: wanbalance-notify.sh GROUP|INSTANCE NAME MASTER|BACKUP|FAULT|STOP PRIORITY
# (a single argument primary|backup|fault works too, for notify_master "... primary" style use).
#
#   MASTER: commit conntrackd's external cache (the other router's connections) into the
#           kernel, flush the caches, resync the internal cache with the kernel and send a bulk
#           update to the other router (the FTFW failover sequence of conntrackd's
#           primary-backup.sh), then `wanbalancectl role primary`.
#   BACKUP: make sure conntrackd runs, shorten the kernel's timers for the entries this router
#           no longer forwards, ask the other router for a resync, then `wanbalancectl role backup`.
#   FAULT:  shorten the kernel's timers, then `wanbalancectl role fault`.
#   STOP:   keepalived is stopping (this router gives up the addresses): `wanbalancectl role fault`.
#
# Install as /etc/keepalived/wanbalance-notify.sh, owned by root and not writable by anyone
# else (keepalived's enable_script_security). The settings below can also come from the
# environment.
set -u

CONNTRACKD=${CONNTRACKD:-/usr/sbin/conntrackd}
CONNTRACKD_CONF=${CONNTRACKD_CONF:-/etc/conntrackd/conntrackd.conf}
CONNTRACKD_LOCK=${CONNTRACKD_LOCK:-/var/lock/conntrackd.lock}
WANBALANCECTL=${WANBALANCECTL:-wanbalancectl}
# Empty: messages go to syslog (logger); otherwise they are appended to this file.
NOTIFY_LOG=${WANBALANCE_NOTIFY_LOG:-}

log() {
    if [ -n "$NOTIFY_LOG" ]; then
        printf '%s wanbalance-notify[%s]: %s\n' "$(date +%s.%N)" "$$" "$*" >>"$NOTIFY_LOG"
    else
        logger -t wanbalance-notify -- "$*"
    fi
}

ct() {
    "$CONNTRACKD" -C "$CONNTRACKD_CONF" "$@" || log "conntrackd $* failed (exit $?)"
}

role() {
    "$WANBALANCECTL" role "$1" || log "wanbalancectl role $1 failed (exit $?)"
}

if [ $# -ge 3 ]; then state=$3; else state=${1:-}; fi
log "state ${state} (${*})"

case "$state" in
    MASTER|primary)
        ct -c       # commit the external cache into the kernel table
        ct -f       # flush the internal and external caches
        ct -R       # resynchronize the internal cache with the kernel table
        ct -B       # send a bulk update to the other router
        role primary
        ;;
    BACKUP|backup)
        if ! "$CONNTRACKD" -C "$CONNTRACKD_CONF" -s >/dev/null 2>&1; then
            # Not running: a killed conntrackd leaves its lock file behind.
            log "conntrackd is not running; starting it"
            rm -f "$CONNTRACKD_LOCK"
            ct -d
        fi
        ct -t       # shorten the kernel's timers: drop entries this router no longer forwards
        ct -n       # request a resync from the primary
        role backup
        ;;
    FAULT|fault)
        ct -t
        role fault
        ;;
    STOP)
        role fault
        ;;
    *)
        log "unknown state '${state}'"
        echo "usage: wanbalance-notify.sh GROUP|INSTANCE NAME MASTER|BACKUP|FAULT|STOP [PRIORITY]" >&2
        exit 1
        ;;
esac
exit 0
