// Errors as values: a Status (ok or errno + one operator-readable line) and Expected<T>.
// Nothing in the daemon throws across the event loop; functions return these instead.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace wb {

struct Status {
    int err = 0;          // positive errno, or 0 when ok; EINVAL for non-kernel failures
    std::string message;  // one line, includes the kernel's words when they exist

    static Status ok() { return {}; }
    static Status fail(int err, std::string message) { return {err ? err : 1, std::move(message)}; }
    bool is_ok() const { return err == 0; }
    explicit operator bool() const { return is_ok(); }
};

template <class T>
class Expected {
public:
    Expected(T value) : v_(std::move(value)) {}
    Expected(Status error) : v_(std::move(error)) {}

    bool has_value() const { return v_.index() == 0; }
    explicit operator bool() const { return has_value(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Status& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Status> v_;
};

}  // namespace wb
