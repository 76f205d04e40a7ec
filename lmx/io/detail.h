// Helpers shared by the io sources; not part of the public API.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace lmx::io::detail {

// Reads and parses a JSON file. lmx::IoError when unreadable, lmx::FormatError naming the
// file when the text is not JSON. `shown` is the name used in messages.
nlohmann::json read_json_file(const std::filesystem::path& path, const std::string& shown);
// `text` with Python's bare Infinity / -Infinity / NaN tokens (outside strings) written as
// +-1.7976931348623157e308 / null, so a strict JSON parser accepts it.
std::string replace_python_non_finite(const std::string& text);

// True for a relative path made only of normal components separated by '/': no empty,
// "." or ".." component, no leading '/', no backslash, no control characters. Names that pass
// cannot leave the folder they are joined to.
bool is_safe_relative_path(std::string_view name);

// A short printable rendering of untrusted text for error messages.
std::string printable(std::string_view s, size_t max_len = 120);

}  // namespace lmx::io::detail
