#pragma once
// The status page (web/status.html), compiled into the binary at build time by embed_page.cmake.
#include <string_view>

namespace snisplice::events {

std::string_view status_page();

}  // namespace snisplice::events
