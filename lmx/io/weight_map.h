// Every tensor of a model's safetensors files by name, each with the file that holds it.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmx/io/safetensors.h"

namespace lmx::io {

struct WeightRef {
  std::shared_ptr<const SafetensorsFile> file;  // owns the bytes (file->owner())
  const TensorInfo* info = nullptr;             // points into *file
};

class WeightMap {
 public:
  using Map = std::map<std::string, WeightRef, std::less<>>;

  // Adds every tensor of `file`. lmx::FormatError naming the tensor and both files when a
  // name is already present.
  void add_file(std::shared_ptr<const SafetensorsFile> file);

  const WeightRef* find(std::string_view name) const;
  // lmx::InvalidArgument naming the tensor when absent.
  const WeightRef& at(std::string_view name) const;
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }
  Map::const_iterator begin() const { return map_.begin(); }
  Map::const_iterator end() const { return map_.end(); }

  // For per-architecture sanitize(): drop or rename entries. Both return false when
  // `name` is absent; rename throws lmx::InvalidArgument when `to` already exists.
  bool erase(std::string_view name);
  bool rename(std::string_view from, std::string to);

  // The files in the order they were added.
  const std::vector<std::shared_ptr<const SafetensorsFile>>& files() const { return files_; }

 private:
  Map map_;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
};

}  // namespace lmx::io
