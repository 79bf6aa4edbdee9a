#include "flow/close/access_log.h"

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <cstring>

#include <fmt/format.h>

#include "base/json_string.h"

namespace snisplice::close {

std::string format_access_record(const AccessRecord& r) {
  std::string out = "{\"time\":";
  // gmtime_r + snprintf: no locale, no allocation, nothing that can fail when the process is
  // out of descriptors.
  auto seconds = std::chrono::time_point_cast<std::chrono::seconds>(r.start);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(r.start - seconds).count();
  std::time_t when = std::chrono::system_clock::to_time_t(seconds);
  std::tm utc{};
  ::gmtime_r(&when, &utc);
  char stamp[64];  // room for any int the compiler can imagine in each field
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  append_json_string(out, stamp);
  auto field = [&out](std::string_view name, std::string_view value) {
    out += ",\"";
    out += name;
    out += "\":";
    append_json_string(out, value);
  };
  field("listener", r.listener);
  field("client", r.client);
  field("host", r.host);
  field("route", r.route);
  field("backend", r.backend);
  field("splice", r.splice_mode);
  out += fmt::format(",\"bytes_client_to_backend\":{},\"bytes_backend_to_client\":{}",
                     r.bytes_client_to_backend, r.bytes_backend_to_client);
  out += fmt::format(",\"duration_ms\":{:.3f}",
                     std::chrono::duration<double, std::milli>(r.duration).count());
  field("result", r.result);
  out += "}\n";
  return out;
}

tl::expected<AccessLog, Error> AccessLog::open(const config::AccessLog& where) {
  AccessLog log;
  switch (where.kind) {
    case config::AccessLog::Kind::off: break;
    case config::AccessLog::Kind::stdout_stream: log.fd_ = STDOUT_FILENO; break;
    case config::AccessLog::Kind::file: {
      int fd = ::open(where.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
      if (fd < 0) return tl::unexpected(Error::from_errno("access_log: cannot open " + where.path, errno));
      log.owned_.reset(fd);
      log.fd_ = fd;
      break;
    }
  }
  return log;
}

void AccessLog::write(const AccessRecord& record) const {
  if (fd_ < 0) return;
  std::string line = format_access_record(record);
  // A full pipe or disk must not stall the worker: a lost log line is better.
  [[maybe_unused]] auto written = ::write(fd_, line.data(), line.size());
}

}  // namespace snisplice::close
