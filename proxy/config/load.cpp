#include "config/load.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"
#include "config/load_sections.h"
#include "config/yaml_reader.h"

namespace snisplice::config {
namespace {

using detail::Problems;

constexpr size_t kMaxFileBytes = 16 << 20;  // far beyond any real configuration

bool is_document_marker(std::string_view line, std::string_view marker) {
  return line.starts_with(marker) &&
         (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
}

// The line where a second YAML document starts, 0 when there is none. Found by scanning
// rather than with YAML::LoadAll, which loops forever allocating on some malformed input
// (yaml-cpp 0.7; found by fuzz_config). A "---" or "..." at the start of a line is always a
// document marker in YAML, even inside block and quoted scalars.
int second_document_line(std::string_view text) {
  bool seen_content = false;  // of the first document
  bool ended = false;         // by "..."
  int line_number = 0;
  while (!text.empty()) {
    ++line_number;
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (is_document_marker(line, "---")) {
      if (seen_content || ended) return line_number;
      line.remove_prefix(3);
    } else if (is_document_marker(line, "...")) {
      ended = true;
      continue;
    }
    size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || line[first] == '#' || (first == 0 && line[0] == '%'))
      continue;
    if (ended) return line_number;
    seen_content = true;
  }
  return 0;
}

}  // namespace

LoadResult load_config_text(std::string_view yaml, std::string_view file_name) {
  Problems problems(file_name);
  Config config;
  config.source_path = std::string(file_name);
  try {
    if (int line = second_document_line(yaml))
      problems.add(line, "", "syntax error: only one YAML document is allowed");
    detail::read_document(problems, YAML::Load(std::string(yaml)), config);
  } catch (const detail::TooManyValues& e) {
    problems.add(e.line, "",
                 "more than " + std::to_string(Problems::kMaxValues) +
                     " values (aliases repeating large parts of the file?)");
  } catch (const YAML::Exception& e) {
    problems.add(e.mark.line < 0 ? 0 : e.mark.line + 1, "", "syntax error: " + e.msg);
  } catch (const std::exception& e) {
    problems.add(0, "", std::string("cannot load: ") + e.what());
  }
  if (!problems.empty()) return tl::unexpected(problems.lines());
  return config;
}

LoadResult load_config_file(const std::string& path) {
  auto failed = [&](int error) {
    return tl::unexpected(
        std::vector<std::string>{path + ": cannot read: " + std::strerror(error)});
  };
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return failed(errno);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return failed(errno);
  if (S_ISDIR(info.st_mode)) return failed(EISDIR);
  std::string text;
  char buffer[16384];
  while (true) {
    ssize_t got = ::read(fd.get(), buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return failed(errno);
    if (got == 0) break;
    if (text.size() + static_cast<size_t>(got) > kMaxFileBytes) return failed(EFBIG);
    text.append(buffer, static_cast<size_t>(got));
  }
  return load_config_text(text, path);
}

}  // namespace snisplice::config
