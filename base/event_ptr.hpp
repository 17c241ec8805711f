// Owning pointers for sd-event objects: a source is disabled and released with its owner, so a
// callback can never run on an object that is gone; the loop reference is dropped likewise.
#pragma once

#include <systemd/sd-event.h>

#include <memory>

namespace wb {

struct SourceUnref {
    void operator()(sd_event_source* s) const { sd_event_source_disable_unref(s); }
};
using SourcePtr = std::unique_ptr<sd_event_source, SourceUnref>;

struct EventUnref {
    void operator()(sd_event* e) const { sd_event_unref(e); }
};
using EventPtr = std::unique_ptr<sd_event, EventUnref>;

}  // namespace wb
