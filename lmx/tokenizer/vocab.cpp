#include <algorithm>
#include <cstring>

#include "lmx/tokenizer/models.h"

namespace lmx::tokenizer::detail {

namespace {
inline uint64_t mum(uint64_t a, uint64_t b) {
  unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}
inline uint64_t load_tail(const char* p, size_t n) {  // n <= 8
  uint64_t w = 0;
  std::memcpy(&w, p, n);
  return w;
}
inline bool same_bytes(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  size_t n = a.size(), i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    if (x != y) return false;
  }
  return load_tail(a.data() + i, n - i) == load_tail(b.data() + i, n - i);
}
}  // namespace

size_t StringHash::operator()(std::string_view s) const noexcept {
  // A multiply-mix hash (wyhash-style) for the short strings tokens are: overlapping
  // loads instead of byte loops.
  constexpr uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull;
  const char* p = s.data();
  const size_t n = s.size();
  uint64_t seed = k0 ^ n;
  uint64_t a, b;
  auto load8 = [](const char* q) {
    uint64_t v;
    std::memcpy(&v, q, 8);
    return v;
  };
  auto load4 = [](const char* q) {
    uint32_t v;
    std::memcpy(&v, q, 4);
    return static_cast<uint64_t>(v);
  };
  if (n <= 16) {
    if (n >= 8) {
      a = load8(p);
      b = load8(p + n - 8);
    } else if (n >= 4) {
      a = load4(p);
      b = load4(p + n - 4);
    } else if (n > 0) {
      a = (static_cast<uint64_t>(static_cast<uint8_t>(p[0])) << 16) |
          (static_cast<uint64_t>(static_cast<uint8_t>(p[n >> 1])) << 8) |
          static_cast<uint8_t>(p[n - 1]);
      b = 0;
    } else {
      a = b = 0;
    }
  } else {
    size_t i = 0;
    for (; i + 16 < n; i += 16) seed = mum(load8(p + i) ^ k1, load8(p + i + 8) ^ seed);
    a = load8(p + n - 16);
    b = load8(p + n - 8);
  }
  return static_cast<size_t>(mum(k1 ^ n, mum(a ^ k1, b ^ seed)));
}

void Vocab::reserve(size_t n) {
  spans_.reserve(n);
  arena_.reserve(n * 8);
  size_t cap = 16;
  while (cap * 3 < n * 4) cap <<= 1;  // load factor <= 3/4
  if (cap > slots_.size()) {
    std::vector<uint64_t> old = std::move(slots_);
    slots_.assign(cap, 0);
    for (uint64_t s : old) {
      if (!s) continue;
      auto id = static_cast<int32_t>((s & 0xFFFFFFFFu) - 1);
      size_t h = StringHash{}(token(id));
      for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (!slots_[i]) {
          slots_[i] = s;
          break;
        }
      }
    }
  }
}

void Vocab::grow() { reserve(std::max<size_t>(count_ * 2, 1024)); }

std::optional<int32_t> Vocab::find_hashed(std::string_view t, size_t h) const {
  if (slots_.empty()) return std::nullopt;
  uint64_t tag = static_cast<uint64_t>(h >> 32) << 32;
  size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    uint64_t s = slots_[i];
    if (!s) return std::nullopt;
    if ((s & 0xFFFFFFFF00000000ull) == tag) {
      auto id = static_cast<int32_t>((s & 0xFFFFFFFFu) - 1);
      if (same_bytes(token(id), t)) return id;
    }
  }
}

void Vocab::add(std::string_view t, int32_t id) {
  if ((count_ + 1) * 4 > slots_.size() * 3) grow();
  if (static_cast<size_t>(id) >= spans_.size()) spans_.resize(static_cast<size_t>(id) + 1);
  spans_[id] = Span{static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(t.size())};
  arena_.append(t);
  size_t h = StringHash{}(t);
  uint64_t entry = (static_cast<uint64_t>(h >> 32) << 32) | static_cast<uint32_t>(id + 1);
  size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    uint64_t s = slots_[i];
    if (!s) {
      slots_[i] = entry;
      ++count_;
      return;
    }
    if ((s & 0xFFFFFFFF00000000ull) == (entry & 0xFFFFFFFF00000000ull)) {
      auto other = static_cast<int32_t>((s & 0xFFFFFFFFu) - 1);
      if (other != id && same_bytes(token(other), t)) {
        slots_[i] = entry;  // same token again: re-point it
        return;
      }
    }
  }
}

void PairMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap * 3 < n * 4) cap <<= 1;  // load factor <= 3/4
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{kEmpty, Value{0, 0}});
  count_ = 0;
  for (const Slot& s : old) {
    if (s.key != kEmpty) insert(s.key, s.value);
  }
}

void PairMap::insert(uint64_t key, Value value) {
  if ((count_ + 1) * 4 > slots_.size() * 3) reserve(std::max<size_t>(count_ * 2, 1024));
  size_t mask = slots_.size() - 1;
  for (size_t i = mix(key) & mask;; i = (i + 1) & mask) {
    if (slots_[i].key == key) return;
    if (slots_[i].key == kEmpty) {
      slots_[i] = Slot{key, value};
      ++count_;
      return;
    }
  }
}

void WordCache::clear_locked() const {
  slots_.assign(kSlots, Slot{});
  words_.clear();
  ids_.clear();
  count_ = 0;
}

bool WordCache::get(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.size() > kMaxWordBytes) return false;
  uint64_t h = StringHash{}(word) | 1;
  std::lock_guard<std::mutex> lock(mutex_);
  if (slots_.empty()) return false;
  for (size_t i = h & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
    const Slot& s = slots_[i];
    if (s.hash == 0) return false;
    if (s.hash == h &&
        same_bytes(std::string_view(words_.data() + s.word_offset, s.word_length), word)) {
      ids.insert(ids.end(), ids_.begin() + s.ids_offset,
                 ids_.begin() + s.ids_offset + s.ids_length);
      return true;
    }
  }
}

void WordCache::put(std::string_view word, const int32_t* ids, size_t n) const {
  if (word.size() > kMaxWordBytes || n > kMaxIds) return;
  uint64_t h = StringHash{}(word) | 1;
  std::lock_guard<std::mutex> lock(mutex_);
  if (slots_.empty() || count_ * 2 >= kSlots) clear_locked();
  for (size_t i = h & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
    Slot& s = slots_[i];
    if (s.hash == h &&
        same_bytes(std::string_view(words_.data() + s.word_offset, s.word_length), word)) {
      return;
    }
    if (s.hash == 0) {
      s.hash = h;
      s.word_offset = static_cast<uint32_t>(words_.size());
      s.word_length = static_cast<uint16_t>(word.size());
      s.ids_offset = static_cast<uint32_t>(ids_.size());
      s.ids_length = static_cast<uint16_t>(n);
      words_.append(word);
      ids_.insert(ids_.end(), ids, ids + n);
      ++count_;
      return;
    }
  }
}

}  // namespace lmx::tokenizer::detail
