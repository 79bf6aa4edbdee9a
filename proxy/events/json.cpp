#include "events/json.h"

#include <cstdio>

namespace snisplice::events {

void JsonObject::key(std::string_view name) {
  if (!first_) out_ += ',';
  first_ = false;
  append_json_string(out_, name);
  out_ += ':';
}

JsonObject& JsonObject::string(std::string_view name, std::string_view value) {
  key(name);
  append_json_string(out_, value);
  return *this;
}

JsonObject& JsonObject::number(std::string_view name, uint64_t value) {
  key(name);
  out_ += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::number(std::string_view name, double value) {
  key(name);
  char text[64];
  std::snprintf(text, sizeof text, "%.3f", value);
  out_ += text;
  return *this;
}

JsonObject& JsonObject::boolean(std::string_view name, bool value) {
  key(name);
  out_ += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::raw(std::string_view name, std::string_view json) {
  key(name);
  out_ += json;
  return *this;
}

}  // namespace snisplice::events
