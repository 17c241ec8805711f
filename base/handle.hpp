// One way to own a C library's object: a unique_ptr whose deleter calls the library's free
// function, e.g. Handle<nl_msg, nlmsg_free>. Null is never passed to the free function.
#pragma once

#include <memory>

namespace wb {

template <auto Free>
struct FreeWith {
    template <class T>
    void operator()(T* p) const {
        if (p) Free(p);
    }
};

template <class T, auto Free>
using Handle = std::unique_ptr<T, FreeWith<Free>>;

}  // namespace wb
