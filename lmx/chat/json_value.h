// Conversion of JSON documents (nlohmann ordered_json: key order is kept, as Python
// dicts keep it) into template values.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "lmx/chat/value.h"

namespace lmx::chat {

Value value_from_json(const nlohmann::ordered_json& j);

}  // namespace lmx::chat
