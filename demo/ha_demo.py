"""The demo's second part: two wanbalance routers as an active/backup pair (docs/ha.md). The
primary loses every link while 20 connections carry data, and the backup takes over without
resetting any of them."""

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from hatakeover import HELD, by_wan, hold, restore, take_over, wait_status_role  # noqa: E402
from labha import ROUTER_ADDR, VIP, HaLab  # noqa: E402


def run(say, show, n: int) -> bool:
    """Narrates the pair; True when every held connection survived the takeover."""
    say("Two routers, one gateway: an active/backup pair (docs/ha.md)")
    with HaLab() as lab:
        show(f"rtrA and rtrB share the LAN and both ISP segments (bridges in {lab.ns('sw')}),\n"
             f"with a sync link between them. Own addresses: rtrA {ROUTER_ADDR['rtrA']['charter']}, "
             f"{ROUTER_ADDR['rtrA']['integra']}, {ROUTER_ADDR['rtrA']['lan']}; rtrB "
             f"{ROUTER_ADDR['rtrB']['charter']}, {ROUTER_ADDR['rtrB']['integra']}, "
             f"{ROUTER_ADDR['rtrB']['lan']}.\n"
             f"Shared addresses (VIPs), held by the primary: the LAN's gateway {VIP['lan']}, "
             f"Charter {VIP['charter']}, Integra {VIP['integra']}.\n"
             "keepalived (VRRPv3, adverts every 0.1 s) moves the VIPs; conntrackd copies every "
             "connection to the backup; the shipped notify script tells wanbalanced its role.")
        config = lab.ha_config()
        daemons = lab.start_wanbalanced(config=config)
        lab.start_pair()
        say("The same wanbalance.json on both routers: each WAN's LAN connections leave from its VIP")
        show("\n".join(f'{w["name"]}: "snat": "{w["snat"]}"' for w in config["wans"])
             + '\n"ha_pair": true  (a TCP packet that would open a connection without a SYN is '
               'dropped, not reset)')
        rulesets = {r: d.ctl("ruleset", "--config", str(d.config_path), check=True).stdout
                    for r, d in daemons.items()}
        digest = {r: hashlib.sha256(text.encode()).hexdigest()[:12] for r, text in rulesets.items()}
        show(f"`wanbalancectl ruleset` on rtrA and rtrB: sha256 {digest['rtrA']} and "
             f"{digest['rtrB']}: {'identical' if len(set(digest.values())) == 1 else 'DIFFERENT'}")
        wait_status_role(lab, "rtrA", "primary")
        wait_status_role(lab, "rtrB", "backup")
        for router, d in daemons.items():
            show(f"{router}: " + d.ctl("status", check=True).stdout.splitlines()[0])

        say(f"{n} new connections from the LAN, through the primary")
        spread = by_wan(lab.spread(n, src="192.168.88.31-192.168.88.40"))
        show(", ".join(f"{wan} {count}" for wan, count in sorted(spread.items()))
             + " (the server sees the VIPs)")

        say(f"{HELD} long-lived connections (downloads) over both WANs, data both ways every 10 ms")
        held = hold(lab)
        show(f"established: {held.ok}; rtrB's conntrackd holds them in its external cache")

        say("rtrA loses every link (as if its power were cut)")
        t = take_over(lab, held, "links-down", "rtrA")
        alive = len(t.results) - len(t.lost)
        show(f"rtrB held the VIPs {t.vips_ms:.0f} ms later (three missed adverts); the first new "
             f"connection worked at {t.new_ms:.0f} ms; conntrackd's commit and `role primary` at "
             f"{t.role_ms:.0f} ms.\n"
             f"{alive} of {len(t.results)} downloads still running; the longest any of them waited "
             f"for data: {t.longest_gap_ms:.0f} ms; resets: {sum(t.rst.values())}.\n"
             f"10 new connections right after: "
             + ", ".join(f"{wan} {count}" for wan, count in sorted(t.spread.items())))
        show("rtrB: " + daemons["rtrB"].ctl("status", check=True).stdout.splitlines()[0])
        show("\n".join(line for line in daemons["rtrB"].log().splitlines()
                       if "event=role-changed" in line))

        say("rtrA's links come back: it rejoins as backup (nopreempt) and resyncs")
        restore(lab, "links-down", "rtrA")
        for router, d in daemons.items():
            show(f"{router}: " + d.ctl("status", check=True).stdout.splitlines()[0])
        say("Tearing the pair down")
    return not t.lost
