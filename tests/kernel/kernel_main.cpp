// Kernel tests need root (CAP_NET_ADMIN) and run in network namespaces they create.
// Without root they report "skipped" and succeed, saying why.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
    if (geteuid() != 0) {
        std::fprintf(stderr, "SKIP: kernel tests need root to create network namespaces\n");
        return 77;  // meson's "skipped"
    }
    doctest::Context context(argc, argv);
    return context.run();
}
