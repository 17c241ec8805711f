// The control socket: a non-blocking Unix stream server on the daemon's sd-event loop, and the
// blocking client wanbalancectl uses. One request line in, one reply line out, then close.
#include "daemon/control.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

#include "base/event_ptr.hpp"
#include "base/fd.hpp"
#include "base/ipv4.hpp"

namespace wb {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Control connections are short; a pile of idle ones means something is wrong. Beyond this,
// new connections are closed at once so the daemon keeps its file descriptors.
constexpr size_t kMaxControlConnections = 64;
constexpr int kListenBacklog = 16;
constexpr auto kAcceptPause = std::chrono::milliseconds(500);

std::string socket_path(const std::string& runtime_dir) {
    std::string dir = runtime_dir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    return dir + "/" + kControlSocketName;
}

Expected<sockaddr_un> unix_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return Status::fail(ENAMETOOLONG, "control socket path " + path + " is longer than " +
                                              std::to_string(sizeof addr.sun_path - 1) + " bytes");
    memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

// mkdir -p, giving directories it creates mode 0755 whatever the umask.
Status make_dirs(const std::string& dir) {
    for (size_t pos = 1; pos <= dir.size(); ++pos) {
        if (pos != dir.size() && dir[pos] != '/') continue;
        std::string part = dir.substr(0, pos);
        if (mkdir(part.c_str(), 0755) == 0) {
            chmod(part.c_str(), 0755);
        } else if (errno != EEXIST) {
            return Status::fail(errno, "Could not create runtime directory " + part + ": " + errno_text(errno));
        }
    }
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0)
        return Status::fail(errno, "Could not use runtime directory " + dir + ": " + errno_text(errno));
    if (!S_ISDIR(st.st_mode))
        return Status::fail(ENOTDIR, "Could not use runtime directory " + dir + ": " + errno_text(ENOTDIR));
    return Status::ok();
}

// Something is at `path`: a live daemon (refuse), a stale socket of a crashed run (remove it),
// or something that is not ours (refuse rather than delete it).
Status clear_stale_socket(const std::string& path, const sockaddr_un& addr, const std::string& runtime_dir) {
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return Status::ok();
        return Status::fail(errno, "Could not check " + path + ": " + errno_text(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return Status::fail(EEXIST, path + " exists and is not a socket; not replacing it");
    Fd probe{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
    if (probe.fd < 0) return Status::fail(errno, "Could not create a Unix socket: " + errno_text(errno));
    // A listening socket accepts (or is momentarily full: EAGAIN); only a socket nobody
    // listens on any more answers ECONNREFUSED.
    if (connect(probe.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 || errno == EAGAIN)
        return Status::fail(EADDRINUSE, "another wanbalanced is running on " + runtime_dir);
    if (errno != ECONNREFUSED)
        return Status::fail(errno, "Could not check " + path + ": " + errno_text(errno));
    if (unlink(path.c_str()) != 0 && errno != ENOENT)
        return Status::fail(errno, "Could not remove stale " + path + ": " + errno_text(errno));
    return Status::ok();
}

std::string serialize_reply(const json& reply) {
    // Handlers may put interface names or file contents into replies: never let invalid UTF-8
    // turn a reply into an exception.
    return reply.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace

json control_error(const std::string& message, int exit_code) {
    return json{{"ok", false}, {"error", message}, {"exit_code", exit_code}};
}

std::string resolve_runtime_dir(const std::string& from_flag) {
    if (!from_flag.empty()) return from_flag;
    if (const char* env = getenv("RUNTIME_DIRECTORY"); env && *env) {
        // systemd joins several RuntimeDirectory= entries with ':'; ours is the first.
        std::string dirs = env;
        return dirs.substr(0, dirs.find(':'));
    }
    return kDefaultRuntimeDir;
}

struct ControlServer::Impl {
    struct Connection {
        Impl* server = nullptr;
        Fd fd;
        uid_t uid = static_cast<uid_t>(-1);
        SourcePtr io;
        SourcePtr timer;
        std::string in;
        std::string out;
        size_t written = 0;
        bool replying = false;
    };

    EventPtr event;
    std::string runtime_dir;
    std::string path;
    ControlHandler handler;
    std::chrono::milliseconds client_timeout{kControlClientTimeout};
    Fd listen_fd;
    SourcePtr listen_source;
    // Created up front, disabled: when accept() fails with EMFILE there is no fd left for
    // the timerfd a first CLOCK_MONOTONIC source needs.
    SourcePtr accept_pause;
    dev_t dev = 0;
    ino_t ino = 0;
    std::map<Connection*, std::unique_ptr<Connection>> connections;

    ~Impl() {
        connections.clear();
        accept_pause.reset();
        listen_source.reset();
        listen_fd.reset();
        // Unlink only our own socket: a daemon started after us may have replaced it.
        struct stat st {};
        if (!path.empty() && lstat(path.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino)
            unlink(path.c_str());
    }

    void drop(Connection* c) { connections.erase(c); }

    static int on_accept(sd_event_source*, int, uint32_t, void* userdata) {
        auto* self = static_cast<Impl*>(userdata);
        for (;;) {
            int fd = accept4(self->listen_fd.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                // EMFILE & co.: the connection stays queued and epoll would report it again at
                // once; pause accepting for a while instead of spinning.
                if (errno != EAGAIN) self->pause_accepting();
                return 0;
            }
            self->add_connection(Fd{fd});
        }
    }

    void pause_accepting() {
        auto usec = std::chrono::duration_cast<std::chrono::microseconds>(kAcceptPause).count();
        if (sd_event_source_set_time_relative(accept_pause.get(), static_cast<uint64_t>(usec)) < 0 ||
            sd_event_source_set_enabled(accept_pause.get(), SD_EVENT_ONESHOT) < 0)
            return;
        sd_event_source_set_enabled(listen_source.get(), SD_EVENT_OFF);
    }

    static int on_accept_resume(sd_event_source*, uint64_t, void* userdata) {
        auto* self = static_cast<Impl*>(userdata);
        sd_event_source_set_enabled(self->listen_source.get(), SD_EVENT_ON);
        return 0;
    }

    void add_connection(Fd fd) {
        if (connections.size() >= kMaxControlConnections) return;  // fd closes here
        auto c = std::make_unique<Connection>();
        c->server = this;
        c->fd = std::move(fd);
        ucred cred{};
        socklen_t len = sizeof cred;
        if (getsockopt(c->fd.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) c->uid = cred.uid;
        sd_event_source* io = nullptr;
        if (sd_event_add_io(event.get(), &io, c->fd.fd, EPOLLIN, on_io, c.get()) < 0) return;
        c->io.reset(io);
        sd_event_source* timer = nullptr;
        auto usec = std::chrono::duration_cast<std::chrono::microseconds>(client_timeout).count();
        if (sd_event_add_time_relative(event.get(), &timer, CLOCK_MONOTONIC, static_cast<uint64_t>(usec), 0,
                                       on_timeout, c.get()) < 0)
            return;
        c->timer.reset(timer);
        Connection* key = c.get();
        connections.emplace(key, std::move(c));
    }

    static int on_timeout(sd_event_source*, uint64_t, void* userdata) {
        auto* c = static_cast<Connection*>(userdata);
        c->server->drop(c);
        return 0;
    }

    static int on_io(sd_event_source*, int, uint32_t revents, void* userdata) {
        auto* c = static_cast<Connection*>(userdata);
        Impl* self = c->server;
        if (c->replying) {
            self->write_reply(c);
        } else if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            self->read_request(c);
        }
        return 0;
    }

    void read_request(Connection* c) {
        char buf[4096];
        for (;;) {
            ssize_t n = read(c->fd.fd, buf, sizeof buf);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) return;
                drop(c);  // the client went away
                return;
            }
            if (n == 0) {
                if (c->in.empty()) {
                    drop(c);  // connected and left without asking anything
                } else {
                    reply(c, answer(c->uid, c->in));
                }
                return;
            }
            size_t scanned = c->in.size();
            c->in.append(buf, static_cast<size_t>(n));
            if (size_t nl = c->in.find('\n', scanned); nl != std::string::npos) {
                c->in.resize(nl);
                reply(c, answer(c->uid, c->in));
                return;
            }
            if (c->in.size() > kMaxControlRequestBytes) {
                reply(c, control_error("request is larger than " + std::to_string(kMaxControlRequestBytes) +
                                       " bytes"));
                return;
            }
        }
    }

    // Permission is checked after the request is read: closing a Unix socket with unread data
    // makes the client's next read fail with ECONNRESET instead of returning our reply.
    json answer(uid_t uid, const std::string& text) {
        if (uid != 0 && uid != geteuid())
            return control_error("permission denied: only root may control wanbalanced");
        if (text.size() > kMaxControlRequestBytes)
            return control_error("request is larger than " + std::to_string(kMaxControlRequestBytes) + " bytes");
        json request = json::parse(text, nullptr, false);
        if (request.is_discarded()) return control_error("request is not valid JSON");
        if (!request.is_object()) return control_error("request is not a JSON object");
        auto command = request.find("command");
        if (command == request.end() || !command->is_string())
            return control_error("request has no \"command\" string");
        try {
            json result = handler(request);
            if (!result.is_object()) return control_error("internal error: handler reply is not an object");
            return result;
        } catch (const std::exception& e) {
            return control_error(std::string("internal error: ") + e.what());
        } catch (...) {
            return control_error("internal error: unknown exception");
        }
    }

    void reply(Connection* c, const json& reply_json) {
        c->out = serialize_reply(reply_json);
        c->written = 0;
        c->replying = true;
        if (sd_event_source_set_io_events(c->io.get(), EPOLLOUT) < 0) {
            drop(c);
            return;
        }
        write_reply(c);
    }

    void write_reply(Connection* c) {
        while (c->written < c->out.size()) {
            ssize_t n = send(c->fd.fd, c->out.data() + c->written, c->out.size() - c->written, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN) return;  // wait for EPOLLOUT; the timer bounds the wait
                drop(c);
                return;
            }
            c->written += static_cast<size_t>(n);
        }
        drop(c);
    }
};

Expected<std::unique_ptr<ControlServer>> ControlServer::open(sd_event* event, const std::string& runtime_dir,
                                                             ControlHandler handler) {
    return open(event, runtime_dir, std::move(handler), kControlClientTimeout);
}

Expected<std::unique_ptr<ControlServer>> ControlServer::open(sd_event* event, const std::string& runtime_dir,
                                                             ControlHandler handler,
                                                             std::chrono::milliseconds client_timeout) {
    auto impl = std::make_unique<Impl>();
    impl->event.reset(sd_event_ref(event));
    impl->runtime_dir = runtime_dir;
    impl->handler = std::move(handler);
    impl->client_timeout = client_timeout;

    std::string path = socket_path(runtime_dir);
    auto addr = unix_address(path);
    if (!addr) return addr.error();
    if (Status s = make_dirs(runtime_dir); !s) return s;
    if (Status s = clear_stale_socket(path, *addr, runtime_dir); !s) return s;

    impl->listen_fd = Fd{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
    if (impl->listen_fd.fd < 0) return Status::fail(errno, "Could not create a Unix socket: " + errno_text(errno));
    if (bind(impl->listen_fd.fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
        return Status::fail(errno, "Could not bind control socket " + path + ": " + errno_text(errno));
    impl->path = path;  // from here on, ~Impl unlinks it
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0) {
        impl->dev = st.st_dev;
        impl->ino = st.st_ino;
    }
    // Tightened before listen(): until then nobody can connect, so there is no window in
    // which the socket is reachable with the umask's mode.
    if (chmod(path.c_str(), 0600) != 0)
        return Status::fail(errno, "Could not set mode 0600 on " + path + ": " + errno_text(errno));
    if (listen(impl->listen_fd.fd, kListenBacklog) != 0)
        return Status::fail(errno, "Could not listen on " + path + ": " + errno_text(errno));

    sd_event_source* source = nullptr;
    if (int r = sd_event_add_io(event, &source, impl->listen_fd.fd, EPOLLIN, Impl::on_accept, impl.get()); r < 0)
        return Status::fail(-r, "Could not watch control socket " + path + ": " + errno_text(-r));
    impl->listen_source.reset(source);
    sd_event_source* pause = nullptr;
    if (int r = sd_event_add_time_relative(event, &pause, CLOCK_MONOTONIC, 0, 0, Impl::on_accept_resume,
                                           impl.get());
        r < 0)
        return Status::fail(-r, "Could not create a timer for " + path + ": " + errno_text(-r));
    impl->accept_pause.reset(pause);
    sd_event_source_set_enabled(pause, SD_EVENT_OFF);

    std::unique_ptr<ControlServer> server(new ControlServer());
    server->impl_ = std::move(impl);
    return server;
}

ControlServer::~ControlServer() = default;

const std::string& ControlServer::path() const { return impl_->path; }

// ---- client ----

namespace {

int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

std::string seconds_text(std::chrono::milliseconds timeout) {
    if (timeout.count() % 1000 == 0) return std::to_string(timeout.count() / 1000) + "s";
    return std::to_string(timeout.count()) + "ms";
}

}  // namespace

Expected<json> control_request(const std::string& runtime_dir, const json& request,
                               std::chrono::milliseconds timeout) {
    const std::string path = socket_path(runtime_dir);
    const auto deadline = Clock::now() + timeout;
    const std::string no_reply =
        "no reply from wanbalanced on " + path + " within " + seconds_text(timeout);
    auto addr = unix_address(path);
    if (!addr) return addr.error();

    Fd fd{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (fd.fd < 0) return Status::fail(errno, "Could not create a Unix socket: " + errno_text(errno));
    // A blocking connect to a Unix socket waits only while the listener's backlog is full,
    // bounded by SO_SNDTIMEO.
    auto ms = timeout.count();
    timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    setsockopt(fd.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd.fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
        int err = errno;
        if (err == EAGAIN || err == EINPROGRESS) return Status::fail(ETIMEDOUT, no_reply);
        std::string hint;
        if (err == ENOENT || err == ECONNREFUSED) hint = " (is wanbalanced running?)";
        if (err == EACCES || err == EPERM) hint = " (only root may control wanbalanced)";
        return Status::fail(err, "cannot connect to " + path + ": " + errno_text(err) + hint);
    }
    fcntl(fd.fd, F_SETFL, fcntl(fd.fd, F_GETFL) | O_NONBLOCK);

    std::string out = request.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    size_t sent = 0;
    while (sent < out.size()) {
        ssize_t n = send(fd.fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n >= 0) {
            sent += static_cast<size_t>(n);
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EPIPE || errno == ECONNRESET) break;  // the server gave up on us: read why
        if (errno != EAGAIN) return Status::fail(errno, "Could not send to " + path + ": " + errno_text(errno));
        pollfd p{fd.fd, POLLOUT, 0};
        if (poll(&p, 1, remaining_ms(deadline)) == 0) return Status::fail(ETIMEDOUT, no_reply);
    }

    std::string in;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd.fd, buf, sizeof buf);
        if (n > 0) {
            in.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) break;
        if (errno == EINTR) continue;
        // The server closes with our unread request bytes in its queue when it rejects a
        // request early; Linux then reports ECONNRESET after the reply it did send.
        if (errno == ECONNRESET) break;
        if (errno != EAGAIN) return Status::fail(errno, "Could not read from " + path + ": " + errno_text(errno));
        pollfd p{fd.fd, POLLIN, 0};
        if (poll(&p, 1, remaining_ms(deadline)) == 0) return Status::fail(ETIMEDOUT, no_reply);
    }
    if (in.empty()) return Status::fail(EPROTO, "wanbalanced closed " + path + " without replying");
    json reply = json::parse(in, nullptr, false);
    if (reply.is_discarded() || !reply.is_object())
        return Status::fail(EPROTO, "malformed reply from wanbalanced on " + path);
    return reply;
}

}  // namespace wb
