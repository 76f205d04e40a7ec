#include "lmx/io/weight_map.h"

#include "lmx/base/error.h"

namespace lmx::io {

void WeightMap::add_file(std::shared_ptr<const SafetensorsFile> file) {
  for (const TensorInfo& t : file->tensors()) {
    auto [it, inserted] = map_.try_emplace(t.name, WeightRef{file, &t});
    if (!inserted) {
      throw FormatError("tensor '" + t.name + "' appears in both '" + it->second.file->name() +
                        "' and '" + file->name() + "'");
    }
  }
  files_.push_back(std::move(file));
}

const WeightRef* WeightMap::find(std::string_view name) const {
  auto it = map_.find(name);
  return it == map_.end() ? nullptr : &it->second;
}

const WeightRef& WeightMap::at(std::string_view name) const {
  if (const WeightRef* r = find(name)) return *r;
  throw InvalidArgument("no weight named '" + std::string(name) + "'");
}

bool WeightMap::erase(std::string_view name) {
  auto it = map_.find(name);
  if (it == map_.end()) return false;
  map_.erase(it);
  return true;
}

bool WeightMap::rename(std::string_view from, std::string to) {
  auto it = map_.find(from);
  if (it == map_.end()) return false;
  if (from == to) return true;
  if (map_.count(to) != 0) {
    throw InvalidArgument("cannot rename weight '" + std::string(from) + "' to '" + to +
                          "': that name exists");
  }
  WeightRef ref = std::move(it->second);
  map_.erase(it);
  map_.emplace(std::move(to), std::move(ref));
  return true;
}

}  // namespace lmx::io
