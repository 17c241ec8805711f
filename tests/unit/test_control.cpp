// Tests for the control socket: a real sd-event loop in this process on a temp dir, clients on
// worker threads (and a forked unprivileged child), checking what the socket actually does.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>
#include <vector>

#include "control/client.hpp"
#include "control/server.hpp"

using nlohmann::json;
using wb::Reply;
using wb::Request;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/wb-control-test-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

struct Event {
    sd_event* e = nullptr;
    Event() { REQUIRE(sd_event_new(&e) >= 0); }
    ~Event() { sd_event_unref(e); }
};

// Runs the loop on this thread (sd-event is single-threaded) until `f`, on a worker thread,
// returns; gives back its result.
template <class F>
auto serve_while(sd_event* e, F f) {
    using R = decltype(f());
    std::optional<R> result;
    std::atomic<bool> done{false};
    std::thread worker([&] {
        result.emplace(f());
        done = true;
    });
    while (!done) sd_event_run(e, 10'000);
    worker.join();
    return std::move(*result);
}

void serve_for(sd_event* e, std::chrono::milliseconds d) {
    auto until = Clock::now() + d;
    while (Clock::now() < until) sd_event_run(e, 10'000);
}

sockaddr_un raw_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    return addr;
}

// A listening socket at `path` made by hand, as another program (or a crashed run) leaves one.
int listen_raw(const std::string& path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr = raw_address(path);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(fd, 1) == 0);
    return fd;
}

// A hand-made client: sends raw bytes, optionally half-closes, reads until EOF (or reset).
int connect_raw(const std::string& path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr = raw_address(path);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

std::string read_all(int fd) {
    std::string in;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;  // EOF, ECONNRESET after the reply, or the 5 s safety timeout
        in.append(buf, static_cast<size_t>(n));
    }
    return in;
}

std::string raw_exchange(const std::string& path, const std::string& data, bool half_close = false) {
    int fd = connect_raw(path);
    size_t sent = 0;
    while (sent < data.size()) {
        ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;  // the server stopped reading (request too large)
        sent += static_cast<size_t>(n);
    }
    if (half_close) shutdown(fd, SHUT_WR);
    std::string reply = read_all(fd);
    close(fd);
    return reply;
}

json status_object() {
    return json{{"version", "0.1.0"}, {"config", "/etc/wanbalance.json"}, {"uptime_s", 12},
                {"wans", json::array({{{"name", "charter"}, {"state", "up"}}})}};
}

// Answers status with status_object() and reload with a summary; set echoes wan and mode as
// wan and state, except for the WANs "boom" (throws) and "big" (a 4 MiB reply).
Reply test_handler(const Request& request) {
    if (std::holds_alternative<wb::StatusRequest>(request)) return wb::StatusReply{status_object()};
    if (std::holds_alternative<wb::ReloadRequest>(request)) return wb::ReloadReply{"no kernel change"};
    const auto& set = std::get<wb::SetRequest>(request);
    if (set.wan == "boom") throw std::runtime_error("handler exploded");
    if (set.wan == "big") return wb::StatusReply{json{{"blob", std::string(4 << 20, 'x')}}};
    return wb::SetReply{set.wan, set.mode};
}

// A set request whose WAN name makes the request line about `bytes` long.
Request padded_request(size_t bytes) { return wb::SetRequest{std::string(bytes, 'y'), "down"}; }

// The reply as type T; fails the test for an error or another kind.
template <class T>
T expect(const wb::Expected<Reply>& reply) {
    REQUIRE_MESSAGE(reply.has_value(), reply.error().message);
    const T* typed = std::get_if<T>(&*reply);
    REQUIRE_MESSAGE(typed != nullptr, wb::encode(*reply));
    return *typed;
}

std::unique_ptr<wb::ControlServer> open_server(sd_event* e, const std::string& dir,
                                               std::chrono::milliseconds timeout = wb::kControlClientTimeout) {
    auto server = wb::ControlServer::open(e, dir, test_handler, timeout);
    REQUIRE_MESSAGE(server.has_value(), server.error().message);
    return std::move(*server);
}

json parse_reply(const std::string& text) {
    REQUIRE(!text.empty());
    CHECK(text.back() == '\n');
    return json::parse(text);
}

}  // namespace

TEST_CASE("status round trip, and the socket file is ours: mode 0600 in a 0755 dir") {
    TempDir tmp;
    Event ev;
    const std::string dir = tmp.path + "/run/wanbalance";
    mode_t old_umask = umask(0077);  // a umask must not decide the modes
    auto server = open_server(ev.e, dir);
    umask(old_umask);
    CHECK(server->path() == dir + "/control.sock");

    struct stat st {};
    REQUIRE(stat(dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0755);
    REQUIRE(lstat(server->path().c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);

    auto reply = serve_while(ev.e, [&] { return wb::control_call(dir, wb::StatusRequest{}); });
    CHECK(expect<wb::StatusReply>(reply).status == status_object());

    auto reload = serve_while(ev.e, [&] { return wb::control_call(dir, wb::ReloadRequest{}); });
    CHECK(expect<wb::ReloadReply>(reload).summary == "no kernel change");

    auto echo = serve_while(ev.e, [&] { return wb::control_call(dir, wb::SetRequest{"charter", "down"}); });
    CHECK(expect<wb::SetReply>(echo) == wb::SetReply{"charter", "down"});

    std::string path = server->path();
    server.reset();
    CHECK(access(path.c_str(), F_OK) != 0);  // unlinked on destruction
}

TEST_CASE("a request without a newline is answered at EOF") {
    TempDir tmp;
    Event ev;
    auto server = open_server(ev.e, tmp.path);
    std::string text = serve_while(ev.e, [&] { return raw_exchange(server->path(), R"({"command":"status"})", true); });
    CHECK(parse_reply(text)["status"] == status_object());
}

TEST_CASE("bad requests get one error reply each and the server keeps serving") {
    TempDir tmp;
    Event ev;
    auto server = open_server(ev.e, tmp.path);
    const std::string path = server->path();
    auto exchange = [&](const std::string& data) {
        return parse_reply(serve_while(ev.e, [&] { return raw_exchange(path, data); }));
    };
    auto expect_error = [](const json& reply, const std::string& message) {
        CHECK(reply["ok"] == false);
        CHECK(reply["exit_code"] == 1);
        CHECK(reply["error"] == message);
    };

    expect_error(exchange("{not json\n"), "request is not valid JSON");
    expect_error(exchange("[1, 2]\n"), "request is not a JSON object");
    expect_error(exchange("{\"wan\": \"charter\"}\n"), "request has no \"command\" string");
    expect_error(exchange("{\"command\": 5}\n"), "request has no \"command\" string");
    expect_error(exchange("{\"command\": \"boom\"}\n"), "unknown command \"boom\" (expected status, reload, set, handover, role or connections)");
    expect_error(exchange("{\"command\": \"set\", \"wan\": \"charter\"}\n"), "set needs \"wan\" and \"mode\" strings");
    expect_error(exchange("{\"command\": \"set\", \"wan\": \"boom\", \"mode\": \"down\"}\n"),
                 "internal error: handler exploded");

    SUBCASE("larger than the cap, with no newline in sight") {
        // Far more than the cap: the server answers early, stops reading, and the client
        // still receives the reply (then ECONNRESET, which control_call treats as the end).
        std::string huge = "{\"command\": \"status\", \"pad\": \"" + std::string(4 * wb::kMaxControlRequestBytes, 'x');
        expect_error(exchange(huge), "request is larger than 65536 bytes");
        auto reply = serve_while(ev.e, [&] { return wb::control_call(tmp.path, padded_request(1 << 20)); });
        CHECK(expect<wb::ErrorReply>(reply) == wb::error_reply("request is larger than 65536 bytes"));
    }
    SUBCASE("just under the cap is fine") {
        Request request = padded_request(wb::kMaxControlRequestBytes - 100);
        REQUIRE(wb::encode(request).size() < wb::kMaxControlRequestBytes);
        auto reply = serve_while(ev.e, [&] { return wb::control_call(tmp.path, request); });
        CHECK(expect<wb::SetReply>(reply).state == "down");
    }

    auto reply = serve_while(ev.e, [&] { return wb::control_call(tmp.path, wb::StatusRequest{}); });
    CHECK(expect<wb::StatusReply>(reply).status == status_object());
}

TEST_CASE("a client that never sends does not hold up others and is dropped after the timeout") {
    TempDir tmp;
    Event ev;
    auto server = open_server(ev.e, tmp.path, 1000ms);
    const std::string path = server->path();

    // The silent client connects first and waits for the server to hang up on it.
    std::atomic<int64_t> silent_waited_ms{-1};
    std::atomic<bool> silent_connected{false};
    std::thread silent([&] {
        int fd = connect_raw(path);
        auto start = Clock::now();
        silent_connected = true;
        std::string got = read_all(fd);
        silent_waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
        CHECK(got.empty());
        close(fd);
    });
    while (!silent_connected) std::this_thread::yield();
    serve_for(ev.e, 50ms);  // the silent connection is accepted and pending now

    auto start = Clock::now();
    auto reply = serve_while(ev.e, [&] { return wb::control_call(tmp.path, wb::StatusRequest{}); });
    auto took = Clock::now() - start;
    expect<wb::StatusReply>(reply);
    CHECK(took < 500ms);  // not held up by the silent client's 1 s
    CHECK(silent_waited_ms == -1);  // still connected while the other client was served

    auto until = Clock::now() + 5s;
    while (silent_waited_ms < 0 && Clock::now() < until) sd_event_run(ev.e, 10'000);
    silent.join();
    CHECK(silent_waited_ms >= 800);
    CHECK(silent_waited_ms < 3000);
}

TEST_CASE("a client that does not read its reply does not block the loop") {
    TempDir tmp;
    Event ev;
    auto server = open_server(ev.e, tmp.path, 1000ms);
    const std::string path = server->path();

    // 4 MiB is far beyond a Unix socket's buffer, so the server's write would block.
    int lazy = connect_raw(path);
    std::string request = "{\"command\": \"set\", \"wan\": \"big\", \"mode\": \"down\"}\n";
    REQUIRE(send(lazy, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
    serve_for(ev.e, 50ms);

    auto start = Clock::now();
    auto reply = serve_while(ev.e, [&] { return wb::control_call(tmp.path, wb::StatusRequest{}); });
    expect<wb::StatusReply>(reply);
    CHECK(Clock::now() - start < 500ms);

    // After the timeout the server gives up: the lazy client gets part of the reply, then EOF.
    serve_for(ev.e, 1500ms);
    std::string got = read_all(lazy);
    close(lazy);
    CHECK(got.size() > 0);
    CHECK(got.size() < (4u << 20));
}

TEST_CASE("out of file descriptors: the server pauses accepting instead of spinning, then recovers") {
    TempDir tmp;
    Event ev;
    auto server = open_server(ev.e, tmp.path);
    int client = connect_raw(server->path());
    std::string request = "{\"command\": \"status\"}\n";
    REQUIRE(send(client, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));

    rlimit saved{};
    REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    rlimit low = saved;
    low.rlim_cur = 256;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    std::vector<int> fillers;
    for (int fd; (fd = dup(client)) >= 0;) fillers.push_back(fd);
    REQUIRE(errno == EMFILE);

    // A level-triggered listener whose accept() fails would burn the CPU for the whole time.
    auto cpu_ms = [] {
        rusage ru{};
        getrusage(RUSAGE_THREAD, &ru);
        return ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 + ru.ru_stime.tv_sec * 1000 +
               ru.ru_stime.tv_usec / 1000;
    };
    long before = cpu_ms();
    serve_for(ev.e, 300ms);
    long spent = cpu_ms() - before;
    CHECK(spent < 100);

    for (int fd : fillers) close(fd);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);
    serve_for(ev.e, 700ms);  // the pause ends and the queued client is served
    json reply = parse_reply(read_all(client));
    close(client);
    CHECK(reply["status"] == status_object());
}

TEST_CASE("startup: stale socket replaced, live daemon refused, foreign file kept") {
    TempDir tmp;
    Event ev;
    const std::string path = tmp.path + "/control.sock";

    SUBCASE("a stale socket from a crashed run is replaced") {
        close(listen_raw(path));  // what kill -9 leaves behind: the file, nobody listening
        REQUIRE(access(path.c_str(), F_OK) == 0);

        auto server = open_server(ev.e, tmp.path);
        auto reply = serve_while(ev.e, [&] { return wb::control_call(tmp.path, wb::StatusRequest{}); });
        expect<wb::StatusReply>(reply);
    }
    SUBCASE("a second daemon on the same runtime dir is refused and leaves the first alone") {
        auto first = open_server(ev.e, tmp.path);
        struct stat before {};
        REQUIRE(lstat(path.c_str(), &before) == 0);

        auto second = wb::ControlServer::open(ev.e, tmp.path, test_handler);
        REQUIRE_FALSE(second.has_value());
        CHECK(second.error().message == "another wanbalanced is running on " + tmp.path);

        struct stat after {};
        REQUIRE(lstat(path.c_str(), &after) == 0);
        CHECK(after.st_ino == before.st_ino);
        auto reply = serve_while(ev.e, [&] { return wb::control_call(tmp.path, wb::StatusRequest{}); });
        expect<wb::StatusReply>(reply);
    }
    SUBCASE("a file that is not a socket is not deleted") {
        FILE* f = fopen(path.c_str(), "w");
        REQUIRE(f);
        fclose(f);
        auto server = wb::ControlServer::open(ev.e, tmp.path, test_handler);
        REQUIRE_FALSE(server.has_value());
        CHECK(server.error().message == path + " exists and is not a socket; not replacing it");
        CHECK(access(path.c_str(), F_OK) == 0);
    }
    SUBCASE("a socket path longer than sun_path is an error, not a truncation") {
        auto server = wb::ControlServer::open(ev.e, tmp.path + "/" + std::string(120, 'd'), test_handler);
        REQUIRE_FALSE(server.has_value());
        CHECK(server.error().message.find("is longer than 107 bytes") != std::string::npos);
    }
    SUBCASE("a replaced socket is not unlinked by the server it replaced") {
        auto server = open_server(ev.e, tmp.path);
        REQUIRE(unlink(path.c_str()) == 0);
        auto other = open_server(ev.e, tmp.path);
        server.reset();
        CHECK(access(path.c_str(), F_OK) == 0);
    }
}

TEST_CASE("client errors name the socket") {
    TempDir tmp;
    SUBCASE("nothing there") {
        auto reply = wb::control_call(tmp.path, wb::StatusRequest{});
        REQUIRE_FALSE(reply.has_value());
        CHECK(reply.error().message == "cannot connect to " + tmp.path +
                                           "/control.sock: No such file or directory (is wanbalanced running?)");
    }
    SUBCASE("a daemon whose loop is stuck: timeout") {
        Event ev;
        auto server = open_server(ev.e, tmp.path);  // listening, but the loop never runs
        auto start = Clock::now();
        auto reply = wb::control_call(tmp.path, wb::StatusRequest{}, 200ms);
        auto took = Clock::now() - start;
        REQUIRE_FALSE(reply.has_value());
        CHECK(reply.error().message == "no reply from wanbalanced on " + tmp.path + "/control.sock within 200ms");
        CHECK(took >= 190ms);
        CHECK(took < 1s);
    }
}

// A stand-in daemon on `dir`: answers one connection with `reply` verbatim once the request
// line is in, then closes.
std::thread fake_daemon(const std::string& dir, std::string reply) {
    int listener = listen_raw(dir + "/control.sock");
    return std::thread([listener, reply = std::move(reply)] {
        int fd = accept(listener, nullptr, nullptr);
        close(listener);
        if (fd < 0) return;
        std::string in;
        char buf[4096];
        for (ssize_t n; in.find('\n') == std::string::npos && (n = read(fd, buf, sizeof buf)) > 0;)
            in.append(buf, static_cast<size_t>(n));
        if (!reply.empty()) send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);  // the client checks what came
        close(fd);
    });
}

TEST_CASE("client: replies that do not decode are errors naming the socket") {
    TempDir tmp;
    const std::string path = tmp.path + "/control.sock";
    SUBCASE("a reply of no known kind") {
        std::thread daemon = fake_daemon(tmp.path, "{\"ok\": true}\n");
        auto reply = wb::control_call(tmp.path, wb::StatusRequest{}, 2s);
        daemon.join();
        REQUIRE_FALSE(reply.has_value());
        CHECK(reply.error().message == "malformed reply from wanbalanced on " + path +
                                           ": reply has none of \"status\", \"summary\", \"handover_s\", \"role\" or \"wan\" and \"state\"");
    }
    SUBCASE("not JSON") {
        std::thread daemon = fake_daemon(tmp.path, "hello\n");
        auto reply = wb::control_call(tmp.path, wb::ReloadRequest{}, 2s);
        daemon.join();
        REQUIRE_FALSE(reply.has_value());
        CHECK(reply.error().message == "malformed reply from wanbalanced on " + path + ": reply is not valid JSON");
    }
    SUBCASE("no reply at all") {
        std::thread daemon = fake_daemon(tmp.path, "");
        auto reply = wb::control_call(tmp.path, wb::SetRequest{"charter", "down"}, 2s);
        daemon.join();
        REQUIRE_FALSE(reply.has_value());
        CHECK(reply.error().message == "wanbalanced closed " + path + " without replying");
    }
}

TEST_CASE("resolve_runtime_dir: flag, then $RUNTIME_DIRECTORY, then /run/wanbalance") {
    const char* saved = getenv("RUNTIME_DIRECTORY");
    std::string saved_value = saved ? saved : "";
    unsetenv("RUNTIME_DIRECTORY");
    CHECK(wb::resolve_runtime_dir("") == "/run/wanbalance");
    setenv("RUNTIME_DIRECTORY", "/run/wb-a:/run/wb-b", 1);
    CHECK(wb::resolve_runtime_dir("") == "/run/wb-a");
    CHECK(wb::resolve_runtime_dir("/tmp/x") == "/tmp/x");
    if (saved) {
        setenv("RUNTIME_DIRECTORY", saved_value.c_str(), 1);
    } else {
        unsetenv("RUNTIME_DIRECTORY");
    }
}

TEST_CASE("only root may control the daemon") {
    if (geteuid() != 0) {
        MESSAGE("skipped: needs root to run an unprivileged peer");
        return;
    }
    TempDir tmp;
    REQUIRE(chmod(tmp.path.c_str(), 0755) == 0);
    Event ev;
    auto server = open_server(ev.e, tmp.path);

    // The child reports control_call's outcome as one line through a pipe.
    auto ask_as_nobody = [&] {
        int pipefd[2];
        REQUIRE(pipe(pipefd) == 0);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(pipefd[0]);
            if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
            auto reply = wb::control_call(tmp.path, wb::StatusRequest{}, 2s);
            std::string line = reply ? wb::encode(*reply) : "error: " + reply.error().message;
            ssize_t n = write(pipefd[1], line.data(), line.size());
            _exit(n == static_cast<ssize_t>(line.size()) ? 0 : 4);
        }
        close(pipefd[1]);
        std::string out = serve_while(ev.e, [&] {
            std::string text;
            char buf[512];
            ssize_t n;
            while ((n = read(pipefd[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
            return text;
        });
        close(pipefd[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
        return out;
    };

    // Mode 0600 already keeps others out at connect().
    CHECK(ask_as_nobody() == "error: cannot connect to " + server->path() +
                                 ": Permission denied (only root may control wanbalanced)");

    // With the file opened up, SO_PEERCRED is what refuses them.
    REQUIRE(chmod(server->path().c_str(), 0666) == 0);
    auto refused = wb::decode_reply(ask_as_nobody());
    REQUIRE(refused.has_value());
    CHECK(*refused == Reply{wb::error_reply("permission denied: only root may control wanbalanced")});
}

namespace {

// An asynchronous handler that holds each status request's Respond for the test to call, and
// answers everything else at once like test_handler.
struct HeldReplies {
    std::vector<wb::Respond> pending;

    wb::AsyncControlHandler handler() {
        return [this](const Request& request, wb::Respond respond) {
            if (std::holds_alternative<wb::StatusRequest>(request)) {
                pending.push_back(std::move(respond));
            } else {
                respond(test_handler(request));
            }
        };
    }
};

// Runs the loop until `done()` holds; fails the test after 5 s.
template <class F>
void serve_until(sd_event* e, F done) {
    auto until = Clock::now() + 5s;
    while (!done() && Clock::now() < until) sd_event_run(e, 10'000);
    REQUIRE(done());
}

// control_call on a worker thread; the loop is the test's to run meanwhile.
struct AsyncCall {
    std::optional<wb::Expected<Reply>> reply;
    std::atomic<bool> done{false};
    std::thread thread;

    AsyncCall(const std::string& dir, Request request)
        : thread([this, dir, request] {
              reply.emplace(wb::control_call(dir, request, 5s));
              done = true;
          }) {}
    ~AsyncCall() {
        if (thread.joinable()) thread.join();
    }
};

// A server on a temp dir whose handler holds the status requests, and clients that ask it.
struct DeferringServer {
    TempDir tmp;
    Event ev;
    HeldReplies held;
    std::unique_ptr<wb::ControlServer> server;

    explicit DeferringServer(std::chrono::milliseconds timeout = wb::kControlClientTimeout) {
        auto opened = wb::ControlServer::open(ev.e, tmp.path, held.handler(), timeout);
        REQUIRE_MESSAGE(opened.has_value(), opened.error().message);
        server = std::move(*opened);
    }

    // A status request from a worker thread, served until the handler holds it.
    std::unique_ptr<AsyncCall> ask() {
        size_t before = held.pending.size();
        auto call = std::make_unique<AsyncCall>(tmp.path, wb::StatusRequest{});
        serve_until(ev.e, [&] { return held.pending.size() == before + 1; });
        return call;
    }

    // Serves until the call has its outcome; returns it.
    wb::Expected<Reply> finish(AsyncCall& call) {
        serve_until(ev.e, [&] { return call.done.load(); });
        call.thread.join();
        return *call.reply;
    }
};

}  // namespace

TEST_CASE("a deferred reply: the client waits for it while the server serves others") {
    DeferringServer s;
    auto waiting = s.ask();
    serve_for(s.ev.e, 100ms);
    CHECK_FALSE(waiting->done);

    // Meanwhile other requests are answered at once.
    auto other = serve_while(s.ev.e, [&] { return wb::control_call(s.tmp.path, wb::SetRequest{"charter", "down"}); });
    CHECK(expect<wb::SetReply>(other) == wb::SetReply{"charter", "down"});
    CHECK_FALSE(waiting->done);

    s.held.pending[0](wb::StatusReply{status_object()});
    s.held.pending[0](wb::error_reply("a second reply is ignored"));
    CHECK(expect<wb::StatusReply>(s.finish(*waiting)).status == status_object());

    // A Respond that outlives its server does nothing.
    s.server.reset();
    s.held.pending[0](wb::StatusReply{status_object()});
}

TEST_CASE("a deferred reply after the client timed out or hung up is dropped") {
    DeferringServer s(300ms);
    SUBCASE("timed out") {
        auto late = s.ask();
        auto reply = s.finish(*late);  // the server hangs up after 300 ms
        REQUIRE_FALSE(reply.has_value());
        CHECK(reply.error().message == "wanbalanced closed " + s.server->path() + " without replying");
    }
    SUBCASE("hung up") {
        auto open_fds = [] {
            return std::distance(std::filesystem::directory_iterator("/proc/self/fd"), {});
        };
        auto fds_before = open_fds();
        int fd = connect_raw(s.server->path());
        std::string request = "{\"command\": \"status\"}\n";
        REQUIRE(send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
        serve_until(s.ev.e, [&] { return s.held.pending.size() == 1; });
        close(fd);
        serve_for(s.ev.e, 50ms);
        CHECK(open_fds() == fds_before);  // the server closed its end at the hang-up, not at the timeout
    }
    REQUIRE(s.held.pending.size() == 1);
    s.held.pending[0](wb::StatusReply{status_object()});  // nobody to send it to: no crash, no leak
    serve_for(s.ev.e, 20ms);

    // The server keeps serving, deferred replies included.
    auto next = s.ask();
    s.held.pending[1](wb::StatusReply{status_object()});
    CHECK(expect<wb::StatusReply>(s.finish(*next)).status == status_object());
}

TEST_CASE("two clients waiting at once each get their own reply, in whatever order they come") {
    DeferringServer s;
    auto first = s.ask();
    auto second = s.ask();
    s.held.pending[1](wb::StatusReply{json{{"client", 2}}});
    CHECK(expect<wb::StatusReply>(s.finish(*second)).status == json{{"client", 2}});
    CHECK_FALSE(first->done);
    s.held.pending[0](wb::StatusReply{json{{"client", 1}}});
    CHECK(expect<wb::StatusReply>(s.finish(*first)).status == json{{"client", 1}});
}

TEST_CASE("an asynchronous handler that throws before it responds gets the internal error reply") {
    TempDir tmp;
    Event ev;
    wb::Respond kept;
    auto server = wb::ControlServer::open(ev.e, tmp.path, [&](const Request&, wb::Respond respond) {
        kept = std::move(respond);
        throw std::runtime_error("handler exploded");
    });
    REQUIRE_MESSAGE(server.has_value(), server.error().message);
    auto reply = serve_while(ev.e, [&] { return wb::control_call(tmp.path, wb::StatusRequest{}); });
    CHECK(expect<wb::ErrorReply>(reply) == wb::error_reply("internal error: handler exploded"));
    kept(wb::StatusReply{status_object()});  // too late: already answered
}
