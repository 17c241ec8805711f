#include <doctest/doctest.h>

#include <map>

#include "probe/syn_watch.hpp"

using namespace wb;
using std::chrono::microseconds;
using std::chrono::milliseconds;

namespace {

const ProbeKey kCharter{"charter", Family::V4};
const ProbeKey kCharter6{"charter", Family::V6};
const ProbeKey kIntegra{"integra", Family::V4};

constexpr Usec ms(uint64_t n) { return n * 1000; }

// Each path's deadline, changeable between calls; paths not listed get 100 ms.
struct Deadlines {
    std::map<ProbeKey, milliseconds> of;
    SynWatch::DeadlineFn fn() const {
        return [this](const ProbeKey& key) -> microseconds {
            auto it = of.find(key);
            return it == of.end() ? milliseconds(100) : it->second;
        };
    }
};

// `n` connections on `key` opened at `at`, ids from `first` on.
void open_n(SynWatch& w, const ProbeKey& key, uint32_t first, unsigned n, Usec at) {
    for (uint32_t id = first; id < first + n; ++id) w.opened(key, id, at);
}

}  // namespace

TEST_CASE("A path is overdue once kOverdueConnections of its connections pass the deadline unanswered") {
    static_assert(kOverdueConnections == 3, "the counts below assume three");
    SynWatch w;
    Deadlines d;
    open_n(w, kCharter, 1, 2, ms(0));
    CHECK(w.overdue(ms(500), d.fn()).empty());  // two are not enough
    w.opened(kCharter, 3, ms(450));
    CHECK(w.overdue(ms(549), d.fn()).empty());  // the third is still within its 100 ms
    CHECK(w.overdue(ms(550), d.fn()) == std::vector<ProbeKey>{kCharter});  // due at exactly 550
    CHECK(w.watched() == 0);  // reported ones are forgotten
    CHECK(w.overdue(ms(5000), d.fn()).empty());
}

TEST_CASE("Answered connections never count, before or after their deadline") {
    SynWatch w;
    Deadlines d;
    open_n(w, kCharter, 1, 3, ms(0));
    w.answered(2);
    CHECK(w.overdue(ms(200), d.fn()).empty());
    w.answered(3);  // a late SYN-ACK: the path answers, slowly
    w.opened(kCharter, 4, ms(150));
    CHECK(w.overdue(ms(300), d.fn()).empty());  // 1 and 4 are overdue: two
    CHECK(w.watched() == 2);
    w.answered(99);  // unknown ids are ignored
    w.opened(kCharter, 5, ms(200));
    CHECK(w.overdue(ms(300), d.fn()) == std::vector<ProbeKey>{kCharter});
}

TEST_CASE("Each overdue connection is reported once") {
    SynWatch w;
    Deadlines d;
    open_n(w, kCharter, 1, 4, ms(0));
    CHECK(w.overdue(ms(100), d.fn()) == std::vector<ProbeKey>{kCharter});
    w.answered(1);  // already reported and forgotten: nothing happens
    open_n(w, kCharter, 10, 2, ms(100));
    CHECK(w.overdue(ms(250), d.fn()).empty());  // two new ones; the four before do not count again
    w.opened(kCharter, 12, ms(150));
    CHECK(w.overdue(ms(250), d.fn()) == std::vector<ProbeKey>{kCharter});
}

TEST_CASE("The same id opened twice is one connection") {
    SynWatch w;
    Deadlines d;
    w.opened(kCharter, 1, ms(0));
    w.opened(kCharter, 1, ms(0));
    w.opened(kCharter, 1, ms(10));
    w.opened(kCharter, 2, ms(0));
    CHECK(w.watched() == 2);
    CHECK(w.overdue(ms(1000), d.fn()).empty());
}

TEST_CASE("Each path is judged against its own deadline, families apart") {
    SynWatch w;
    Deadlines d;
    d.of[kCharter] = milliseconds(50);
    d.of[kCharter6] = milliseconds(400);
    d.of[kIntegra] = milliseconds(200);
    open_n(w, kCharter, 1, 3, ms(0));
    open_n(w, kCharter6, 11, 3, ms(0));
    open_n(w, kIntegra, 21, 3, ms(0));
    CHECK(w.overdue(ms(49), d.fn()).empty());
    CHECK(w.overdue(ms(60), d.fn()) == std::vector<ProbeKey>{kCharter});
    CHECK(w.overdue(ms(300), d.fn()) == std::vector<ProbeKey>{kIntegra});
    CHECK(w.overdue(ms(400), d.fn()) == std::vector<ProbeKey>{kCharter6});
    CHECK(w.watched() == 0);
}

TEST_CASE("Overdue connections count together only within kOverdueWindow of each other") {
    SynWatch w;
    Deadlines d;
    open_n(w, kCharter, 1, 2, ms(0));
    CHECK(w.overdue(ms(100), d.fn()).empty());
    w.opened(kCharter, 3, ms(0) + ms(kOverdueWindow.count()) + ms(1));  // falls due too late to join them
    CHECK(w.overdue(ms(5000), d.fn()).empty());
    CHECK(w.watched() == 1);  // the two old ones are dropped
    open_n(w, kCharter, 4, 2, ms(4000));
    // Judged long after: they still fell due within the window of each other.
    CHECK(w.overdue(ms(60000), d.fn()).empty());  // 3 fell due 3 s before 4 and 5
    open_n(w, kCharter, 6, 1, ms(4500));
    CHECK(w.overdue(ms(60000), d.fn()) == std::vector<ProbeKey>{kCharter});
}

TEST_CASE("A path watches at most kWatchedPerPath connections and forgets the oldest") {
    SynWatch w;
    Deadlines d;
    const uint32_t extra = 10;
    for (uint32_t id = 0; id < kWatchedPerPath + extra; ++id) w.opened(kCharter, id, ms(id));
    w.opened(kIntegra, 100000, ms(0));  // another path is not affected
    CHECK(w.watched() == kWatchedPerPath + 1);
    // The oldest still watched opened at `extra` ms: the ten before are gone.
    CHECK(w.next_due(d.fn()) == ms(0) + ms(100));  // integra's
    w.answered(100000);
    CHECK(w.next_due(d.fn()) == ms(extra) + ms(100));
    for (uint32_t id = 0; id < extra; ++id) w.answered(id);  // forgotten: no effect
    CHECK(w.watched() == kWatchedPerPath);
}

TEST_CASE("next_due is the earliest due time of a connection not yet found overdue") {
    SynWatch w;
    Deadlines d;
    CHECK_FALSE(w.next_due(d.fn()).has_value());
    d.of[kCharter] = milliseconds(300);
    d.of[kIntegra] = milliseconds(50);
    w.opened(kCharter, 1, ms(1000));
    CHECK(w.next_due(d.fn()) == ms(1300));
    w.opened(kIntegra, 2, ms(1100));
    CHECK(w.next_due(d.fn()) == ms(1150));  // later opened, shorter deadline: sooner
    d.of[kIntegra] = milliseconds(500);     // the deadline is asked anew each time
    CHECK(w.next_due(d.fn()) == ms(1300));
    w.answered(1);
    CHECK(w.next_due(d.fn()) == ms(1600));
    // Found overdue but alone: it no longer makes the timer due (it would fire again and again).
    CHECK(w.overdue(ms(1600), d.fn()).empty());
    CHECK_FALSE(w.next_due(d.fn()).has_value());
    CHECK(w.watched() == 1);
    w.opened(kIntegra, 3, ms(1700));
    CHECK(w.next_due(d.fn()) == ms(2200));
}

TEST_CASE("retain forgets every connection of the paths that are gone") {
    SynWatch w;
    Deadlines d;
    open_n(w, kCharter, 1, 3, ms(0));
    open_n(w, kCharter6, 11, 3, ms(0));
    open_n(w, kIntegra, 21, 2, ms(0));
    CHECK(w.overdue(ms(100), d.fn()).size() == 2);  // integra's two are overdue but too few
    open_n(w, kCharter, 31, 3, ms(200));
    open_n(w, kCharter6, 41, 3, ms(200));
    w.retain({kCharter, kIntegra});
    CHECK(w.watched() == 5);
    w.answered(41);  // gone with its path
    w.opened(kIntegra, 23, ms(200));
    CHECK(w.overdue(ms(300), d.fn()) == std::vector<ProbeKey>{kCharter, kIntegra});
    w.retain({});
    CHECK(w.watched() == 0);
    CHECK_FALSE(w.next_due(d.fn()).has_value());
}
