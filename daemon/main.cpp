// wanbalanced: the multi-WAN load-balancing daemon (docs/design.md, Programs). Parses its flags,
// then hands over to the Daemon, which owns everything else.
#include <getopt.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "base/exit_codes.hpp"
#include "control/socket.hpp"
#include "daemon/log.hpp"
#include "daemon/daemon.hpp"
#include "daemon/live_check.hpp"

namespace {

const char* kUsage =
    "Usage: wanbalanced [--config PATH] [--runtime-dir DIR] [--state-dir DIR] [--verbose]\n"
    "\n"
    "Balances new LAN connections over several WAN uplinks, answers connections on the WAN\n"
    "they came in on, and takes a dead WAN out of service until it recovers.\n"
    "Runs in the foreground; normally started by systemd (wanbalance.service).\n"
    "\n"
    "Options:\n"
    "  -c, --config PATH       configuration file (default /etc/wanbalance.json)\n"
    "  -r, --runtime-dir DIR   control socket (default $RUNTIME_DIRECTORY, else\n"
    "                          /run/wanbalance)\n"
    "  -s, --state-dir DIR     what survives a restart: the last applied config, the\n"
    "                          operator's overrides, original sysctls (default\n"
    "                          $STATE_DIRECTORY, else /var/lib/wanbalance)\n"
    "  -v, --verbose           also log debug messages\n"
    "      --check-live        check the configuration against the running system and\n"
    "                          exit (what `wanbalancectl check --live` runs)\n"
    "  -h, --help              show this help\n"
    "      --version           show the version\n"
    "\n"
    "Signals: SIGHUP reloads the configuration (a bad one is refused and the old one keeps\n"
    "running); SIGTERM/SIGINT remove everything wanbalanced created and exit 0 (within a\n"
    "minute of `wanbalancectl handover`, they leave it for the next wanbalanced instead).\n"
    "An invalid configuration file at start runs the last applied configuration if there\n"
    "is one (logged as critical); without one it exits 78.\n"
    "Exit codes: 0 clean stop, 78 invalid configuration, 1 other failure.\n"
    "See wanbalanced(8), wanbalance.json(5), wanbalancectl(8).\n";

}  // namespace

int main(int argc, char** argv) {
    wb::DaemonOptions options;
    std::string runtime_flag, state_flag;
    bool check_live = false;
    static const struct option longopts[] = {
        {"config", required_argument, nullptr, 'c'}, {"runtime-dir", required_argument, nullptr, 'r'},
        {"state-dir", required_argument, nullptr, 's'}, {"verbose", no_argument, nullptr, 'v'},
        {"help", no_argument, nullptr, 'h'}, {"check-live", no_argument, nullptr, 'L'},
        {"version", no_argument, nullptr, 'V'},      {nullptr, 0, nullptr, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "c:r:s:vh", longopts, nullptr)) != -1) {
        switch (opt) {
            case 'c': options.config_path = optarg; break;
            case 'r': runtime_flag = optarg; break;
            case 's': state_flag = optarg; break;
            case 'v': options.verbose = true; break;
            case 'L': check_live = true; break;
            case 'h': std::fputs(kUsage, stdout); return wb::kExitOk;
            case 'V': std::printf("wanbalanced %s\n", WANBALANCE_VERSION); return wb::kExitOk;
            default: std::fputs(kUsage, stderr); return wb::kExitFailure;
        }
    }
    if (optind < argc) {
        std::fprintf(stderr, "wanbalanced: unexpected argument \"%s\"\n%s", argv[optind], kUsage);
        return wb::kExitFailure;
    }
    if (check_live) return wb::run_live_check(options.config_path);
    options.runtime_dir = wb::resolve_runtime_dir(runtime_flag);
    options.state_dir = wb::resolve_state_dir(state_flag);
    wb::log_init(options.verbose);
    wb::Daemon daemon(options);
    return daemon.run();
}
