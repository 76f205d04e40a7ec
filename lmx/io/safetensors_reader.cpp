#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>

#include "lmx/base/error.h"
#include "lmx/io/mapped_file.h"
#include "lmx/io/safetensors.h"

namespace lmx::io {
namespace {

using nlohmann::json;

// Untrusted strings are quoted in errors; keep them short and printable.
std::string shown(std::string_view s) {
  constexpr size_t kMax = 120;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += '?';
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

class HeaderParser {
 public:
  explicit HeaderParser(const std::string& file) : file_(file) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError("safetensors file '" + file_ + "': " + what);
  }
  [[noreturn]] void fail_tensor(std::string_view tensor, const std::string& what) const {
    fail("tensor " + shown(tensor) + ": " + what);
  }

  // A non-negative integer that fits int64 (JSON numbers may be floats, negative, huge).
  uint64_t to_count(const json& v, std::string_view tensor, const char* field) const {
    if (v.is_number_unsigned()) {
      const auto u = v.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return u;
    } else if (v.is_number_integer()) {
      fail_tensor(tensor, std::string(field) + " has a negative value " + v.dump());
    }
    fail_tensor(tensor, std::string(field) + " has an invalid value " + shown(v.dump()) +
                            " (expected a non-negative integer)");
  }

 private:
  const std::string& file_;
};

}  // namespace

int64_t TensorInfo::numel() const {
  // Unsigned so that a shape like [2^62, 2^62, 0] (valid: empty) cannot overflow.
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d == 0) return 0;
    n *= static_cast<uint64_t>(d);
  }
  return static_cast<int64_t>(n);
}

void SafetensorsFile::build_index() {
  index_.clear();
  index_.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

const TensorInfo* SafetensorsFile::find(std::string_view tensor_name) const {
  auto it = index_.find(tensor_name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::at(std::string_view tensor_name) const {
  if (const TensorInfo* t = find(tensor_name)) return *t;
  throw InvalidArgument("safetensors file '" + name_ + "' has no tensor " + shown(tensor_name));
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  auto mapping = MappedFile::open(path);
  std::span<const std::byte> bytes(mapping->data(), mapping->size());
  SafetensorsFile f = parse(bytes, path.string(), mapping);
  f.mapping_ = std::move(mapping);
  return f;
}

SafetensorsFile SafetensorsFile::parse(std::span<const std::byte> bytes,
                                       std::string name,
                                       std::shared_ptr<const void> owner) {
  SafetensorsFile f;
  f.name_ = std::move(name);
  f.owner_ = std::move(owner);
  HeaderParser p(f.name_);

  const uint64_t size = bytes.size();
  if (size < 8) {
    p.fail("file of " + std::to_string(size) + " bytes is too small for the 8-byte header length");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
  if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    p.fail("header length " + std::to_string(n) + " is negative as int64 (corrupt file)");
  }
  if (n > kMaxSafetensorsHeader) {
    p.fail("header length " + std::to_string(n) + " exceeds the cap of " +
           std::to_string(kMaxSafetensorsHeader) + " bytes");
  }
  if (n > size - 8) {  // size >= 8, so no wrap
    p.fail("header length " + std::to_string(n) + " is larger than the file (" +
           std::to_string(size) + " bytes)");
  }
  if (n < 2) p.fail("header length " + std::to_string(n) + " is too small for a JSON object");
  f.header_size_ = n;

  const char* text = reinterpret_cast<const char*>(bytes.data()) + 8;
  json header;
  // nlohmann keeps the last of duplicate keys; a second tensor of the same name is an error.
  std::string duplicate;
  std::unordered_set<std::string> top_keys;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && duplicate.empty() &&
        !top_keys.insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  try {
    header = json::parse(text, text + n, on_event);
  } catch (const json::exception& e) {
    p.fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) p.fail_tensor(duplicate, "appears twice in the header");
  if (!header.is_object()) p.fail("header is not a JSON object");

  const uint64_t data_start = 8 + n;
  const uint64_t data_size = size - data_start;
  const std::byte* data_base = bytes.data() + data_start;

  f.tensors_.reserve(header.size());
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      if (!value.is_object()) p.fail("__metadata__ is not an object of strings");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) {
          p.fail("__metadata__ entry " + shown(mk) + " is not a string");
        }
        f.metadata_.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    if (!value.is_object()) p.fail_tensor(key, "entry is not an object");

    TensorInfo t;
    t.name = key;
    auto dt = value.find("dtype");
    if (dt == value.end() || !dt->is_string()) p.fail_tensor(key, "missing or non-string dtype");
    const auto& dtype_str = dt->get_ref<const std::string&>();
    auto parsed = parse_dtype(dtype_str);
    // Only the safetensors spellings are valid here ("F32", not "float32").
    if (!parsed || dtype_safetensors_name(*parsed) != dtype_str) {
      p.fail_tensor(key, "unknown or unsupported dtype " + shown(dtype_str));
    }
    t.dtype = *parsed;
    const uint64_t esize = dtype_size(t.dtype);

    auto sh = value.find("shape");
    if (sh == value.end() || !sh->is_array()) p.fail_tensor(key, "missing or non-array shape");
    uint64_t numel = 1;
    bool overflow = false;
    bool has_zero = false;
    t.shape.reserve(sh->size());
    for (const auto& d : *sh) {
      const uint64_t dim = p.to_count(d, key, "shape");
      t.shape.push_back(static_cast<int64_t>(dim));
      has_zero = has_zero || dim == 0;
      overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
    }
    uint64_t expected = 0;
    overflow = overflow || __builtin_mul_overflow(numel, esize, &expected) ||
               expected > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    // A zero dimension makes the tensor empty whatever the other dimensions are.
    if (has_zero) {
      expected = 0;
    } else if (overflow) {
      p.fail_tensor(key, "shape " + shown(sh->dump()) + " has an element count that overflows");
    }

    auto off = value.find("data_offsets");
    if (off == value.end() || !off->is_array()) {
      p.fail_tensor(key, "missing or non-array data_offsets");
    }
    if (off->size() != 2) {
      p.fail_tensor(key, "data_offsets has " + std::to_string(off->size()) +
                             " values (expected [begin, end])");
    }
    const uint64_t begin = p.to_count((*off)[0], key, "data_offsets");
    const uint64_t end = p.to_count((*off)[1], key, "data_offsets");
    if (begin > end) {
      p.fail_tensor(key, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                             "] are inverted");
    }
    if (end > data_size) {
      p.fail_tensor(key, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                             "] lie outside the data section of " + std::to_string(data_size) +
                             " bytes");
    }
    if (end - begin != expected) {
      p.fail_tensor(key, "data_offsets span " + std::to_string(end - begin) + " bytes but shape " +
                             sh->dump() + " x " + dtype_str + " needs " + std::to_string(expected));
    }
    t.nbytes = end - begin;
    t.file_offset = data_start + begin;
    t.data = data_base + begin;
    t.aligned = reinterpret_cast<uintptr_t>(t.data) % esize == 0;
    f.tensors_.push_back(std::move(t));
  }

  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.file_offset != b.file_offset ? a.file_offset < b.file_offset : a.nbytes < b.nbytes;
  });
  // Empty tensors may sit anywhere; non-empty ones must not share bytes.
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : f.tensors_) {
    if (t.nbytes == 0) continue;
    if (prev != nullptr && t.file_offset < prev->file_offset + prev->nbytes) {
      p.fail_tensor(t.name, "data overlaps tensor " + shown(prev->name));
    }
    prev = &t;
  }
  f.build_index();
  return f;
}

}  // namespace lmx::io
