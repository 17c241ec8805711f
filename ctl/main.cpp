// wanbalancectl: the operator's tool (docs/design.md, Programs). `check` and `ruleset` work offline on a
// config file; `status`, `reload`, `set`, `handover` and `role` talk to the running daemon over
// its control socket.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/exit_codes.hpp"
#include "base/format.hpp"
#include "config/config.hpp"
#include "config/hooks_trust.hpp"
#include "control/client.hpp"
#include "ctl/status_format.hpp"
#include "rules/desired.hpp"

namespace {

using json = nlohmann::json;
using wb::kExitConfig;
using wb::kExitFailure;
using wb::kExitOk;

constexpr const char* kUsage =
    "Usage: wanbalancectl [--runtime-dir DIR] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  check [--config PATH] [--live]\n"
    "                            validate a config file without touching the kernel;\n"
    "                            --live: also check it against the running system\n"
    "  ruleset [--config PATH] [--full]\n"
    "                            print the nftables ruleset, routes and rules a config produces\n"
    "  status [--json|--prometheus]\n"
    "                            show each WAN's state, gateway, probes and traffic\n"
    "  reload                    make the running daemon re-read its config\n"
    "  connections [--src ADDR] [--wan NAME] [--json]\n"
    "                            the connections wanbalance marked, by WAN (which WAN a host uses)\n"
    "  set WAN up|down|drain|auto [--timeout S]\n"
    "                            operator override for one WAN (auto: back to the prober)\n"
    "  handover                  the daemon's next stop leaves the data plane for its successor\n"
    "  role primary|backup|fault\n"
    "                            tell the daemon its role in an HA pair (keepalived's notify script)\n"
    "\n"
    "Options:\n"
    "  --runtime-dir DIR  the daemon instance's runtime directory\n"
    "                     (default: $RUNTIME_DIRECTORY, else /run/wanbalance)\n"
    "  -h, --help         show this help (or a command's: wanbalancectl COMMAND --help)\n"
    "  --version          show the version\n"
    "\n"
    "Exit status: 0 success, 78 invalid configuration, 1 any other failure.\n";

struct Command {
    const char* name;
    const char* usage;
    const char* help;
};

constexpr Command kCommands[] = {
    {"check", "wanbalancectl check [--config PATH] [--live]",
     "Validate a configuration file without touching the kernel, and that its hooks_dir is a\n"
     "trusted place to run hooks from (owned by root, writable by nobody else, as wanbalanced\n"
     "demands). Prints a one-line summary, or every problem found (file, JSON path, problem)\n"
     "and exits 78.\n"
     "\n"
     "  --config PATH  the file to check (default: /etc/wanbalance.json)\n"
     "  --live         then check it against the running system, changing nothing: each WAN's\n"
     "                 interface exists, is up and has an address; its gateway is inside one\n"
     "                 of the interface's subnets (or is its point-to-point peer) and answers\n"
     "                 ARP (IPv6: neighbour solicitations); default routes of other programs\n"
     "                 that wanbalanced would shadow (they are left alone); the service's user\n"
     "                 can read the file. Each finding is a warning line naming the key; they\n"
     "                 do not change the exit status. Needs root (it sends ARP requests).\n"},
    {"ruleset", "wanbalancectl ruleset [--config PATH] [--full]",
     "Print what a configuration produces with every WAN up: the nftables table (nft -f syntax),\n"
     "then the routes and policy rules as ip commands. Nothing is applied. The 1021 hash buckets\n"
     "of each balance map are summed up in a comment (how many go to each WAN).\n"
     "\n"
     "  --config PATH  the file to render (default: /etc/wanbalance.json)\n"
     "  --full         list every bucket: the table exactly as `nft list table inet wanbalance`\n"
     "                 will show it\n"},
    {"status", "wanbalancectl [--runtime-dir DIR] status [--json|--prometheus]",
     "Show each WAN of the running daemon: state and since when, gateway, probe round-trip time\n"
     "and loss, connections and share of them, bytes.\n"
     "\n"
     "  --json        print the daemon's status object (JSON, see wanbalancectl(8)) instead of a table\n"
     "  --prometheus  print Prometheus metrics (text exposition format) instead of a table\n"},
    {"reload", "wanbalancectl [--runtime-dir DIR] reload",
     "Ask the running daemon to re-read its configuration and apply the difference. On an invalid\n"
     "configuration it prints the problems, exits 78, and the old configuration keeps running.\n"},
    {"set", "wanbalancectl [--runtime-dir DIR] set WAN up|down|drain|auto [--timeout S]",
     "Operator override for one WAN: 'down' takes it out of service (state disabled, its\n"
     "connections flushed), 'drain' sends it no new connections and lets the open ones run out\n"
     "(state draining; `status` counts them down), 'up' keeps it in service whatever the probes\n"
     "say, 'auto' hands it back to the prober. Kept across restarts of the daemon until set to\n"
     "'auto': a drained WAN does not come back by itself.\n"
     "\n"
     "  --timeout S  drain only: after S seconds (at most 604800), set it down, cutting what is\n"
     "               left (the timeout is not kept across a restart)\n"},
    {"connections", "wanbalancectl [--runtime-dir DIR] connections [--src ADDR] [--wan NAME] [--json]",
     "List the connections wanbalance marked, from the running daemon: protocol, source and\n"
     "destination, the WAN carrying it (by name), the policy rule that chose the WAN (when one\n"
     "matches), the TCP state, and bytes (with conntrack accounting, net.netfilter.nf_conntrack_acct).\n"
     "The router's own probes are left out.\n"
     "\n"
     "  --src ADDR   only the connections from this address (IPv4 or IPv6)\n"
     "  --wan NAME   only those of this WAN\n"
     "  --json       a JSON array: family, proto, src, sport, dst, dport, wan, mark, rule, state, bytes\n"},
    {"handover", "wanbalancectl [--runtime-dir DIR] handover",
     "Tell the running daemon that its next stop, within 60 seconds, is a hand-over to a new\n"
     "wanbalanced (a package upgrade runs this before restarting the service): it then leaves its\n"
     "routes, rules and nftables table in place for the new one to adopt, so traffic never stops.\n"},
    {"role", "wanbalancectl [--runtime-dir DIR] role primary|backup|fault",
     "Tell the running daemon its VRRP role in an active/backup pair (\"ha_pair\": true); keepalived's\n"
     "notify script runs this on every transition. The daemon logs each change as a role-changed\n"
     "journal entry, shows the role in status, STATUS= and metrics, and keeps it across restarts.\n"
     "Refused when the configuration does not set \"ha_pair\". Both routers keep probing and\n"
     "balancing as configured whatever their role.\n"},
};

const Command* find_command(std::string_view name) {
    for (const auto& c : kCommands)
        if (name == c.name) return &c;
    return nullptr;
}

int usage_error(const std::string& message, const Command* command = nullptr) {
    std::cerr << "wanbalancectl: " << message << "\n";
    if (command) {
        std::cerr << "Usage: " << command->usage << "\n"
                  << "Run 'wanbalancectl " << command->name << " --help' for details.\n";
    } else {
        std::cerr << "Usage: wanbalancectl [--runtime-dir DIR] COMMAND [ARGS]\n"
                  << "Run 'wanbalancectl --help' for the commands.\n";
    }
    return kExitFailure;
}

void print_command_help(const Command& command) {
    std::cout << "Usage: " << command.usage << "\n\n" << command.help;
}

// Matches "--name VALUE" and "--name=VALUE"; advances i past what it consumed.
// Returns nullopt when args[i] is not this option; sets `missing` when the value is absent.
std::optional<std::string> option_value(const std::vector<std::string>& args, size_t& i, std::string_view name,
                                        bool& missing) {
    const std::string& arg = args[i];
    if (arg == name) {
        if (i + 1 >= args.size()) {
            missing = true;
            return std::string();
        }
        i += 1;
        return args[i];
    }
    if (arg.size() > name.size() && arg.compare(0, name.size(), name) == 0 && arg[name.size()] == '=')
        return arg.substr(name.size() + 1);
    return std::nullopt;
}

std::string config_summary(const wb::Config& config) {
    std::string names;
    for (const auto& wan : config.wans) names += (names.empty() ? "" : ", ") + wan.name;
    std::string out = wb::counted(config.wans.size(), "WAN") + " (" + names + "), " + wb::counted(config.lans.size(), "LAN");
    if (!config.rules.empty() || !config.policies.empty())
        out += ", " + wb::counted(config.rules.size(), "rule") + ", " + wb::counted(config.policies.size(), "policy", "policies");
    return out;
}

// Loads the config or prints every problem; nullopt means "exit 78".
std::optional<wb::Config> load_or_report(const std::string& path) {
    wb::ConfigResult result = wb::load_config(path);
    for (const auto& w : result.warnings) std::cerr << "warning: " << w.format(path) << "\n";
    if (result.errors.empty() && result.config) return std::move(*result.config);
    for (const auto& e : result.errors) std::cerr << e.format(path) << "\n";
    if (result.errors.empty()) std::cerr << path << ": invalid configuration\n";
    return std::nullopt;
}

// wanbalanced beside this program (both in sbin), else one directory up (a build tree, where
// this is ctl/wanbalancectl). The live check runs there: the kernel libraries are the daemon's.
std::string daemon_program() {
    std::error_code ec;
    std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec)
        for (const auto& dir : {self.parent_path(), self.parent_path().parent_path()})
            if (std::filesystem::exists(dir / "wanbalanced", ec)) return (dir / "wanbalanced").string();
    return WANBALANCE_SBINDIR "/wanbalanced";
}

int run_live_check(const std::string& config_path) {
    std::string program = daemon_program();
    std::vector<std::string> args{program, "--check-live", "--config", config_path};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::cout.flush();
    pid_t pid = 0;
    if (int err = posix_spawn(&pid, program.c_str(), nullptr, nullptr, argv.data(), environ); err != 0) {
        std::cerr << "wanbalancectl: cannot run the live check (" << program << "): " << wb::errno_text(err) << "\n";
        return kExitFailure;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return kExitFailure;
    return WIFEXITED(status) ? WEXITSTATUS(status) : kExitFailure;
}

int run_check(const std::string& config_path, bool live) {
    auto config = load_or_report(config_path);
    if (!config) return kExitConfig;
    // Where the daemon would run hooks from must be trusted too (it refuses to start otherwise).
    auto untrusted = wb::check_hooks_dir(config->hooks_dir, 0);
    for (const auto& e : untrusted) std::cerr << e.format(config_path) << "\n";
    if (!untrusted.empty()) return kExitConfig;
    std::cout << config_path << ": OK: " << config_summary(*config) << "\n";
    return live ? run_live_check(config_path) : kExitOk;
}

int run_ruleset(const std::string& config_path, bool full) {
    auto config = load_or_report(config_path);
    if (!config) return kExitConfig;
    std::string text = wb::render_ruleset(*config, wb::build_desired(*config, wb::assume_all_up(*config)), full);
    std::cout << text;
    if (!text.empty() && text.back() != '\n') std::cout << "\n";
    return kExitOk;
}

// Sends one request and returns the reply of type R. An error reply, a failed call or another
// kind of reply is printed and gives nullopt, with `exit_code` set.
template <class R>
std::optional<R> ask_daemon(const std::string& runtime_dir, const wb::Request& request, int& exit_code) {
    auto reply = wb::control_call(runtime_dir, request);
    if (!reply) {
        std::cerr << "wanbalancectl: " << reply.error().message << "\n";
        exit_code = kExitFailure;
        return std::nullopt;
    }
    if (auto* wanted = std::get_if<R>(&*reply)) return std::move(*wanted);
    if (auto* error = std::get_if<wb::ErrorReply>(&*reply)) {
        exit_code = error->exit_code;
        // Config errors already name the file and the JSON path, as `check` prints them.
        std::cerr << (exit_code == kExitConfig ? "" : "wanbalancectl: ") << error->message << "\n";
        return std::nullopt;
    }
    std::cerr << "wanbalancectl: wanbalanced gave a reply of another kind to " << wb::encode(request) << "\n";
    exit_code = kExitFailure;
    return std::nullopt;
}

bool use_color() {
    const char* no_color = getenv("NO_COLOR");
    if (no_color && *no_color) return false;
    const char* term = getenv("TERM");
    if (term && std::string_view(term) == "dumb") return false;
    return isatty(STDOUT_FILENO) == 1;
}

enum class StatusView { Table, Json, Prometheus };

int run_status(const std::string& runtime_dir, StatusView view) {
    int code = kExitOk;
    auto reply = ask_daemon<wb::StatusReply>(runtime_dir, wb::StatusRequest{}, code);
    if (!reply) return code;
    const json& status = reply->status;
    if (view == StatusView::Json) {
        std::cout << status.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    } else if (view == StatusView::Prometheus) {
        std::cout << wb::format_prometheus(status);
    } else {
        std::cout << wb::format_status(status, use_color(), std::chrono::system_clock::now());
    }
    return kExitOk;
}

int run_reload(const std::string& runtime_dir) {
    int code = kExitOk;
    auto reply = ask_daemon<wb::ReloadReply>(runtime_dir, wb::ReloadRequest{}, code);
    if (!reply) return code;
    std::cout << "reloaded" << (reply->summary.empty() ? "" : ": " + reply->summary) << "\n";
    for (const auto& w : reply->warnings) std::cerr << "warning: live check: " << w << "\n";
    return kExitOk;
}

int run_set(const std::string& runtime_dir, const std::string& wan, const std::string& mode, unsigned timeout_s) {
    int code = kExitOk;
    auto reply = ask_daemon<wb::SetReply>(runtime_dir, wb::SetRequest{wan, mode, timeout_s}, code);
    if (!reply) return code;
    std::string said = mode == "auto" ? wan + ": handed back to the prober" : wan + ": operator override " + mode;
    if (mode == "drain")
        said += " (no new connections; `wanbalancectl status` counts the open ones down" +
                std::string(timeout_s ? ", cut in " + std::to_string(timeout_s) + " s" : "") + ")";
    std::cout << said << ", now " << reply->state << "\n";
    return kExitOk;
}

int run_connections(const std::string& runtime_dir, const wb::ConnectionsRequest& request, bool as_json) {
    int code = kExitOk;
    auto reply = ask_daemon<wb::ConnectionsReply>(runtime_dir, request, code);
    if (!reply) return code;
    if (as_json) std::cout << reply->connections.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else std::cout << wb::format_connections(reply->connections);
    return kExitOk;
}

int run_handover(const std::string& runtime_dir) {
    int code = kExitOk;
    auto reply = ask_daemon<wb::HandoverReply>(runtime_dir, wb::HandoverRequest{}, code);
    if (!reply) return code;
    std::cout << "handover: a stop within " << reply->seconds
              << " s leaves the data plane in place for the next wanbalanced\n";
    return kExitOk;
}

int run_role(const std::string& runtime_dir, const std::string& role) {
    int code = kExitOk;
    auto reply = ask_daemon<wb::RoleReply>(runtime_dir, wb::RoleRequest{role}, code);
    if (!reply) return code;
    std::cout << "role: " << reply->role << "\n";
    return kExitOk;
}

int run(const std::vector<std::string>& args) {
    std::string runtime_flag;
    size_t i = 0;
    for (; i < args.size(); ++i) {
        const std::string& arg = args[i];
        bool missing = false;
        if (arg == "-h" || arg == "--help") {
            std::cout << kUsage;
            return kExitOk;
        }
        if (arg == "--version") {
            std::cout << "wanbalancectl " << WANBALANCE_VERSION << "\n";
            return kExitOk;
        }
        if (auto v = option_value(args, i, "--runtime-dir", missing)) {
            if (missing || v->empty()) return usage_error("--runtime-dir needs a directory");
            runtime_flag = *v;
            continue;
        }
        if (!arg.empty() && arg[0] == '-') return usage_error("unknown option " + arg);
        break;
    }
    if (i >= args.size()) return usage_error("no command given");

    const Command* command = find_command(args[i]);
    if (!command) return usage_error("unknown command " + wb::quoted(args[i]));
    const std::string name = command->name;

    std::string config_path = wb::kDefaultConfigPath;
    StatusView view = StatusView::Table;
    bool full = false;       // ruleset --full
    bool live = false;       // check --live
    unsigned timeout_s = 0;  // set WAN drain --timeout S
    wb::ConnectionsRequest conns;  // connections --src --wan
    bool conns_json = false, matched = false;
    std::vector<std::string> positional;
    for (++i; i < args.size(); ++i) {
        const std::string& arg = args[i];
        bool missing = false;
        if (arg == "-h" || arg == "--help") {
            print_command_help(*command);
            return kExitOk;
        }
        if (arg == "--") {
            positional.insert(positional.end(), args.begin() + static_cast<long>(i) + 1, args.end());
            break;
        }
        if (name == "check" || name == "ruleset") {
            if (auto v = option_value(args, i, "--config", missing)) {
                if (missing || v->empty()) return usage_error("--config needs a file", command);
                config_path = *v;
                continue;
            }
        }
        if (name == "set") {
            if (auto v = option_value(args, i, "--timeout", missing)) {
                unsigned long n = 0;
                size_t used = 0;
                try {
                    n = std::stoul(*v, &used);
                } catch (const std::exception&) {
                    used = 0;
                }
                if (missing || used == 0 || used != v->size() || n == 0 || n > wb::kMaxDrainTimeout)
                    return usage_error("--timeout needs whole seconds, 1 to " + std::to_string(wb::kMaxDrainTimeout),
                                       command);
                timeout_s = unsigned(n);
                continue;
            }
        }
        if (name == "connections") {
            if (arg == "--json") {
                conns_json = true;
                continue;
            }
            for (auto [flag, field] : {std::pair{"--src", &conns.src}, std::pair{"--wan", &conns.wan}}) {
                if (auto v = option_value(args, i, flag, missing)) {
                    if (missing || v->empty()) return usage_error(std::string(flag) + " needs a value", command);
                    *field = *v;
                    matched = true;
                }
            }
            if (matched) {
                matched = false;
                continue;
            }
        }
        if (name == "check" && arg == "--live") {
            live = true;
            continue;
        }
        if (name == "ruleset" && arg == "--full") {
            full = true;
            continue;
        }
        if (name == "status" && (arg == "--json" || arg == "--prometheus")) {
            StatusView wanted = arg == "--json" ? StatusView::Json : StatusView::Prometheus;
            if (view != StatusView::Table && view != wanted)
                return usage_error("--json and --prometheus exclude each other", command);
            view = wanted;
            continue;
        }
        if (arg.size() > 1 && arg[0] == '-') return usage_error("unknown option " + arg + " for " + name, command);
        positional.push_back(arg);
    }

    const size_t want_positional = name == "set" ? 2 : name == "role" ? 1 : 0;
    if (positional.size() != want_positional) {
        if (positional.size() > want_positional)
            return usage_error("unexpected argument " + wb::quoted(positional[want_positional]), command);
        return usage_error(name == "role" ? "role needs primary, backup or fault" : "set needs a WAN name and a mode",
                           command);
    }

    const std::string runtime_dir = wb::resolve_runtime_dir(runtime_flag);
    if (name == "check") return run_check(config_path, live);
    if (name == "ruleset") return run_ruleset(config_path, full);
    if (name == "status") return run_status(runtime_dir, view);
    if (name == "reload") return run_reload(runtime_dir);
    if (name == "handover") return run_handover(runtime_dir);
    if (name == "connections") return run_connections(runtime_dir, conns, conns_json);
    if (name == "role") {
        if (!wb::is_ha_role(positional[0]))
            return usage_error("role must be primary, backup or fault, not " + wb::quoted(positional[0]), command);
        return run_role(runtime_dir, positional[0]);
    }
    const std::string& mode = positional[1];
    if (mode != "up" && mode != "down" && mode != "drain" && mode != "auto")
        return usage_error("mode must be up, down, drain or auto, not " + wb::quoted(mode), command);
    if (timeout_s && mode != "drain") return usage_error("--timeout goes with drain only", command);
    return run_set(runtime_dir, positional[0], mode, timeout_s);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        return run(args);
    } catch (const std::exception& e) {
        std::cerr << "wanbalancectl: " << e.what() << "\n";
        return kExitFailure;
    }
}
