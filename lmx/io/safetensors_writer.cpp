#include "lmx/io/safetensors_writer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/io/atomic_write.h"
#include "lmx/io/detail.h"

namespace lmx::io {

void SafetensorsWriter::add(
    std::string name, Dtype dtype, std::vector<int64_t> shape, const void* data, size_t nbytes) {
  if (name == "__metadata__") {
    throw InvalidArgument("safetensors writer: tensor name '__metadata__' is reserved");
  }
  for (const Entry& e : entries_) {
    if (e.name == name)
      throw InvalidArgument("safetensors writer: duplicate tensor '" + name + "'");
  }
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0)
      throw InvalidArgument("safetensors writer: tensor '" + name + "' has a negative dimension");
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) {
      throw InvalidArgument("safetensors writer: tensor '" + name + "' shape overflows");
    }
  }
  uint64_t expected = 0;
  if (__builtin_mul_overflow(numel, dtype_size(dtype), &expected) || expected != nbytes) {
    throw InvalidArgument("safetensors writer: tensor '" + name + "' has " +
                          std::to_string(nbytes) + " bytes but its shape and dtype need " +
                          std::to_string(expected));
  }
  if (data == nullptr && nbytes != 0) {
    throw InvalidArgument("safetensors writer: tensor '" + name + "' has no data");
  }
  entries_.push_back(Entry{std::move(name), dtype, std::move(shape),
                           static_cast<const std::byte*>(data), nbytes, nullptr});
}

void SafetensorsWriter::add(std::string name,
                            Dtype dtype,
                            std::vector<int64_t> shape,
                            std::vector<std::byte> bytes) {
  auto owned = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  add(std::move(name), dtype, std::move(shape), owned->data(), owned->size());
  entries_.back().owned = std::move(owned);
}

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  std::vector<const Entry*> order;
  order.reserve(entries_.size());
  for (const Entry& e : entries_) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    const size_t sa = dtype_size(a->dtype), sb = dtype_size(b->dtype);
    return sa != sb ? sa > sb : a->name < b->name;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    auto& m = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) m[k] = v;
  }
  uint64_t offset = 0;
  for (const Entry* e : order) {
    header[e->name] = {{"dtype", dtype_safetensors_name(e->dtype)},
                       {"shape", e->shape},
                       {"data_offsets", {offset, offset + e->nbytes}}};
    offset += e->nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::type_error& e) {  // a metadata or tensor name that is not UTF-8
    throw InvalidArgument(path.string() + ": a safetensors header string is not valid UTF-8 (" + e.what() + ")");
  }
  // Pad with spaces (valid JSON whitespace) so the data section starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');

  AtomicFile out(path);
  unsigned char len[8];
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  out.write_all(len, 8);
  out.write_all(text.data(), text.size());
  for (const Entry* e : order) out.write_all(e->data, e->nbytes);
  out.commit();
}

}  // namespace lmx::io
