// Owning pointers for sd-event objects: a source is disabled and released with its owner, so a
// callback can never run on an object that is gone; the loop reference is dropped likewise.
#pragma once

#include <systemd/sd-event.h>

#include "base/handle.hpp"

namespace wb {

using SourcePtr = Handle<sd_event_source, sd_event_source_disable_unref>;
using EventPtr = Handle<sd_event, sd_event_unref>;

}  // namespace wb
