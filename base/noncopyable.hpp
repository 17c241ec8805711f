// A private base for classes whose objects are neither copied nor moved (they own a kernel
// socket and are handed out as a unique_ptr): `class Conntrack : NonCopyable`.
#pragma once

namespace wb {

class NonCopyable {
public:
    NonCopyable(const NonCopyable&) = delete;
    NonCopyable& operator=(const NonCopyable&) = delete;

protected:
    NonCopyable() = default;
    ~NonCopyable() = default;
};

}  // namespace wb
