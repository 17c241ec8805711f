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

#include "daemon/control.hpp"

using nlohmann::json;
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

// A hand-made client: sends raw bytes, optionally half-closes, reads until EOF (or reset).
int connect_raw(const std::string& path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
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

// Answers status with status_object(), echoes anything else, throws on "boom".
nlohmann::json test_handler(const json& request) {
    std::string command = request["command"];
    if (command == "status") return json{{"ok", true}, {"status", status_object()}};
    if (command == "boom") throw std::runtime_error("handler exploded");
    if (command == "big") return json{{"ok", true}, {"blob", std::string(4 << 20, 'x')}};
    return json{{"ok", true}, {"echo", request}};
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

    auto reply = serve_while(ev.e, [&] { return wb::control_request(dir, json{{"command", "status"}}); });
    REQUIRE_MESSAGE(reply.has_value(), reply.error().message);
    CHECK((*reply)["ok"] == true);
    CHECK((*reply)["status"] == status_object());

    auto echo = serve_while(ev.e, [&] {
        return wb::control_request(dir, json{{"command", "set"}, {"wan", "charter"}, {"mode", "down"}});
    });
    REQUIRE(echo.has_value());
    CHECK((*echo)["echo"] == json{{"command", "set"}, {"wan", "charter"}, {"mode", "down"}});

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
    expect_error(exchange("{\"command\": \"boom\"}\n"), "internal error: handler exploded");

    SUBCASE("larger than the cap, with no newline in sight") {
        // Far more than the cap: the server answers early, stops reading, and the client
        // still receives the reply (then ECONNRESET, which control_request treats as the end).
        std::string huge = "{\"command\": \"status\", \"pad\": \"" + std::string(4 * wb::kMaxControlRequestBytes, 'x');
        expect_error(exchange(huge), "request is larger than 65536 bytes");
        auto reply = serve_while(ev.e, [&] {
            return wb::control_request(tmp.path, json{{"command", "status"}, {"pad", std::string(1 << 20, 'y')}});
        });
        REQUIRE_MESSAGE(reply.has_value(), reply.error().message);
        expect_error(*reply, "request is larger than 65536 bytes");
    }
    SUBCASE("just under the cap is fine") {
        json request{{"command", "echo"}, {"pad", std::string(wb::kMaxControlRequestBytes - 100, 'x')}};
        REQUIRE(request.dump().size() < wb::kMaxControlRequestBytes);
        auto reply = serve_while(ev.e, [&] { return wb::control_request(tmp.path, request); });
        REQUIRE(reply.has_value());
        CHECK((*reply)["ok"] == true);
    }

    auto reply = serve_while(ev.e, [&] { return wb::control_request(tmp.path, json{{"command", "status"}}); });
    REQUIRE(reply.has_value());
    CHECK((*reply)["ok"] == true);
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
    auto reply = serve_while(ev.e, [&] { return wb::control_request(tmp.path, json{{"command", "status"}}); });
    auto took = Clock::now() - start;
    REQUIRE(reply.has_value());
    CHECK((*reply)["ok"] == true);
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
    std::string request = "{\"command\": \"big\"}\n";
    REQUIRE(send(lazy, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
    serve_for(ev.e, 50ms);

    auto start = Clock::now();
    auto reply = serve_while(ev.e, [&] { return wb::control_request(tmp.path, json{{"command", "status"}}); });
    REQUIRE(reply.has_value());
    CHECK((*reply)["ok"] == true);
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
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
        REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(listen(fd, 1) == 0);
        close(fd);  // what kill -9 leaves behind: the file, nobody listening
        REQUIRE(access(path.c_str(), F_OK) == 0);

        auto server = open_server(ev.e, tmp.path);
        auto reply = serve_while(ev.e, [&] { return wb::control_request(tmp.path, json{{"command", "status"}}); });
        REQUIRE(reply.has_value());
        CHECK((*reply)["ok"] == true);
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
        auto reply = serve_while(ev.e, [&] { return wb::control_request(tmp.path, json{{"command", "status"}}); });
        REQUIRE(reply.has_value());
        CHECK((*reply)["ok"] == true);
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
        auto reply = wb::control_request(tmp.path, json{{"command", "status"}});
        REQUIRE_FALSE(reply.has_value());
        CHECK(reply.error().message == "cannot connect to " + tmp.path +
                                           "/control.sock: No such file or directory (is wanbalanced running?)");
    }
    SUBCASE("a daemon whose loop is stuck: timeout") {
        Event ev;
        auto server = open_server(ev.e, tmp.path);  // listening, but the loop never runs
        auto start = Clock::now();
        auto reply = wb::control_request(tmp.path, json{{"command", "status"}}, 200ms);
        auto took = Clock::now() - start;
        REQUIRE_FALSE(reply.has_value());
        CHECK(reply.error().message == "no reply from wanbalanced on " + tmp.path + "/control.sock within 200ms");
        CHECK(took >= 190ms);
        CHECK(took < 1s);
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

    // The child reports control_request's outcome as one line through a pipe.
    auto ask_as_nobody = [&] {
        int pipefd[2];
        REQUIRE(pipe(pipefd) == 0);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(pipefd[0]);
            if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
            auto reply = wb::control_request(tmp.path, json{{"command", "status"}}, 2s);
            std::string line = reply ? reply->dump() : "error: " + reply.error().message;
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
    json refused = json::parse(ask_as_nobody());
    CHECK(refused == json{{"ok", false},
                          {"error", "permission denied: only root may control wanbalanced"},
                          {"exit_code", 1}});
}
