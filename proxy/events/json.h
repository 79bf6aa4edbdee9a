#pragma once
// A minimal JSON object writer for the event stream: strings escaped per RFC 8259 section 7
// (host names come from clients and may hold anything the parser let through).
#include <cstdint>
#include <string>
#include <string_view>

#include "base/json_string.h"

namespace snisplice::events {

using snisplice::append_json_string;

// Appends `"name":value` pairs to `out`, opening the object on construction; close() ends it.
class JsonObject {
 public:
  explicit JsonObject(std::string& out) : out_(out) { out_ += '{'; }
  JsonObject& string(std::string_view name, std::string_view value);
  JsonObject& number(std::string_view name, uint64_t value);
  JsonObject& number(std::string_view name, double value);  // three decimals
  JsonObject& boolean(std::string_view name, bool value);
  // The raw JSON text of a value already encoded (an array, a nested object).
  JsonObject& raw(std::string_view name, std::string_view json);
  void close() { out_ += '}'; }

 private:
  void key(std::string_view name);
  std::string& out_;
  bool first_ = true;
};

}  // namespace snisplice::events
