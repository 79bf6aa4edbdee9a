#pragma once
// Loading snisplice.yaml into a validated Config. Nothing throws out of these functions: a
// YAML syntax error, an unreadable file and every rule the file breaks come back as error
// lines "file:line: key.path: message", all of them, ordered by line.
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "config/config.h"

namespace snisplice::config {

using LoadResult = tl::expected<Config, std::vector<std::string>>;

LoadResult load_config_file(const std::string& path);

// `file_name` names the text in messages and becomes Config::source_path.
LoadResult load_config_text(std::string_view yaml, std::string_view file_name);

}  // namespace snisplice::config
