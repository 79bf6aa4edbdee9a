#pragma once
// The event a finished connection makes, from the record the access log writes for it: so the
// stream and the log never disagree about a connection.
#include <string_view>

#include "events/event.h"
#include "flow/close/access_log.h"

namespace snisplice::events {

// Results that mean the client was turned away before any backend was dialled: no route, a
// reject route, a limit, a refused address, a bad hello or PROXY header.
bool is_refusal(std::string_view result);

// `refused` for a connection turned away (no backend was reached), `closed` for every other.
// `client` is the record's client as an address (filters match on it).
Payload finished(const close::AccessRecord& record, const SocketAddress& client);

}  // namespace snisplice::events
