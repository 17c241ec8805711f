// The control socket's server: non-blocking, on the daemon's sd-event loop. A connection is read
// until its newline (or EOF), answered (at once or when the handler responds), and closed; slow
// or silent clients are dropped after the client timeout without holding up anyone else.
#include "control/server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>

#include "base/dirs.hpp"
#include "base/event_ptr.hpp"
#include "base/fd.hpp"
#include "base/ipv4.hpp"

namespace wb {
namespace {

// Control connections are short; a pile of idle ones means something is wrong. Beyond this,
// new connections are closed at once so the daemon keeps its file descriptors.
constexpr size_t kMaxControlConnections = 64;
constexpr int kListenBacklog = 16;
constexpr auto kAcceptPause = std::chrono::milliseconds(500);

uint64_t to_usec(std::chrono::milliseconds d) {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

std::string too_large() { return "request is larger than " + std::to_string(kMaxControlRequestBytes) + " bytes"; }

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

// A synchronous handler as an asynchronous one that always answers before it returns.
AsyncControlHandler responding_at_once(ControlHandler handler) {
    return [handler = std::move(handler)](const Request& request, const Respond& respond) {
        respond(handler(request));
    };
}

}  // namespace

struct ControlServer::Impl : std::enable_shared_from_this<ControlServer::Impl> {
    struct Connection {
        Impl* server = nullptr;
        uint64_t serial = 0;  // a Respond finds its connection by it, never by a pointer
        Fd fd;
        uid_t uid = static_cast<uid_t>(-1);
        SourcePtr io;
        SourcePtr timer;
        std::string in;
        std::string out;
        size_t written = 0;
        bool waiting = false;  // for the handler's reply
        bool replying = false;
    };

    EventPtr event;
    std::string runtime_dir;
    std::string path;
    AsyncControlHandler handler;
    std::chrono::milliseconds client_timeout{kControlClientTimeout};
    Fd listen_fd;
    SourcePtr listen_source;
    // Created up front, disabled: when accept() fails with EMFILE there is no fd left for
    // the timerfd a first CLOCK_MONOTONIC source needs.
    SourcePtr accept_pause;
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t last_serial = 0;
    std::map<uint64_t, std::unique_ptr<Connection>> connections;

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

    void drop(Connection* c) { connections.erase(c->serial); }

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

    // When the pause cannot be armed, or the listener cannot be switched off, the listener stays
    // on: a busy loop until descriptors free up beats a socket that never answers again (and the
    // resume timer's re-enabling of a source that is on is a no-op).
    void pause_accepting() {
        if (sd_event_source_set_time_relative(accept_pause.get(), to_usec(kAcceptPause)) < 0 ||
            sd_event_source_set_enabled(accept_pause.get(), SD_EVENT_ONESHOT) < 0)
            return;
        (void)sd_event_source_set_enabled(listen_source.get(), SD_EVENT_OFF);
    }

    static int on_accept_resume(sd_event_source*, uint64_t, void* userdata) {
        auto* self = static_cast<Impl*>(userdata);
        // Could not listen again: try once more after another pause rather than stay deaf.
        if (sd_event_source_set_enabled(self->listen_source.get(), SD_EVENT_ON) < 0) self->pause_accepting();
        return 0;
    }

    void add_connection(Fd fd) {
        if (connections.size() >= kMaxControlConnections) return;  // fd closes here
        auto c = std::make_unique<Connection>();
        c->server = this;
        c->serial = ++last_serial;
        c->fd = std::move(fd);
        ucred cred{};
        socklen_t len = sizeof cred;
        if (getsockopt(c->fd.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) c->uid = cred.uid;
        // Without its sources the connection cannot be served: it closes here, the client sees EOF.
        sd_event_source* io = nullptr;
        if (sd_event_add_io(event.get(), &io, c->fd.fd, EPOLLIN, on_io, c.get()) < 0) return;
        c->io.reset(io);
        sd_event_source* timer = nullptr;
        if (sd_event_add_time_relative(event.get(), &timer, CLOCK_MONOTONIC, to_usec(client_timeout), 0, on_timeout,
                                       c.get()) < 0)
            return;
        c->timer.reset(timer);
        uint64_t key = c->serial;
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
        } else if (c->waiting) {
            // Only a hang-up wakes a waiting connection (epoll reports it whatever it is asked
            // for): nobody is left to read the reply.
            if (revents & (EPOLLHUP | EPOLLERR)) self->drop(c);
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
                    answer(c);
                }
                return;
            }
            size_t scanned = c->in.size();
            c->in.append(buf, static_cast<size_t>(n));
            if (size_t nl = c->in.find('\n', scanned); nl != std::string::npos) {
                c->in.resize(nl);
                answer(c);
                return;
            }
            if (c->in.size() > kMaxControlRequestBytes) {
                reply(c, error_reply(too_large()));
                return;
            }
        }
    }

    // Permission is checked after the request is read: closing a Unix socket with unread data
    // makes the client's next read fail with ECONNRESET instead of returning our reply.
    // The handler's reply may close the connection before the handler returns: `c` is not
    // touched after the handler, only looked up again by its serial.
    void answer(Connection* c) {
        if (c->uid != 0 && c->uid != geteuid())
            return reply(c, error_reply("permission denied: only root may control wanbalanced"));
        if (c->in.size() > kMaxControlRequestBytes) return reply(c, error_reply(too_large()));
        auto request = decode_request(c->in);
        if (!request) return reply(c, error_reply(request.error().message));
        const uint64_t serial = c->serial;
        c->waiting = true;
        // Nothing more is read: a half-closed client would report its EOF over and over.
        if (sd_event_source_set_io_events(c->io.get(), 0) < 0) return drop(c);
        std::string failure;
        try {
            handler(*request, [server = weak_from_this(), serial](const Reply& r) {
                if (auto self = server.lock()) self->deliver(serial, r);
            });
        } catch (const std::exception& e) {
            failure = std::string("internal error: ") + e.what();
        } catch (...) {
            failure = "internal error: unknown exception";
        }
        if (!failure.empty()) deliver(serial, error_reply(failure));  // unless it responded first
    }

    // A Respond's reply: to its connection if that still waits for one, else nowhere.
    void deliver(uint64_t serial, const Reply& r) {
        auto it = connections.find(serial);
        if (it != connections.end() && it->second->waiting) reply(it->second.get(), r);
    }

    void reply(Connection* c, const Reply& r) {
        c->out = encode(r) + "\n";
        c->written = 0;
        c->waiting = false;
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
    return open(event, runtime_dir, responding_at_once(std::move(handler)), kControlClientTimeout);
}

Expected<std::unique_ptr<ControlServer>> ControlServer::open(sd_event* event, const std::string& runtime_dir,
                                                             ControlHandler handler,
                                                             std::chrono::milliseconds client_timeout) {
    return open(event, runtime_dir, responding_at_once(std::move(handler)), client_timeout);
}

Expected<std::unique_ptr<ControlServer>> ControlServer::open(sd_event* event, const std::string& runtime_dir,
                                                             AsyncControlHandler handler) {
    return open(event, runtime_dir, std::move(handler), kControlClientTimeout);
}

Expected<std::unique_ptr<ControlServer>> ControlServer::open(sd_event* event, const std::string& runtime_dir,
                                                             AsyncControlHandler handler,
                                                             std::chrono::milliseconds client_timeout) {
    auto impl = std::make_shared<Impl>();
    impl->event.reset(sd_event_ref(event));
    impl->runtime_dir = runtime_dir;
    impl->handler = std::move(handler);
    impl->client_timeout = client_timeout;

    std::string path = control_socket_path(runtime_dir);
    auto addr = unix_address(path);
    if (!addr) return addr.error();
    if (Status s = make_dirs(runtime_dir, 0755, "runtime directory"); !s) return s;
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
    if (int r = sd_event_source_set_enabled(pause, SD_EVENT_OFF); r < 0)
        return Status::fail(-r, "Could not set up the timer for " + path + ": " + errno_text(-r));

    std::unique_ptr<ControlServer> server(new ControlServer());
    server->impl_ = std::move(impl);
    return server;
}

ControlServer::~ControlServer() = default;

const std::string& ControlServer::path() const { return impl_->path; }

}  // namespace wb
