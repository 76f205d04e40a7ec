#include "lmx/chat/template.h"

#include "lmx/chat/parser.h"
#include "lmx/chat/renderer.h"

namespace lmx::chat {

Template::Template(std::string_view source)
    : parsed_(std::make_shared<const detail::ParsedTemplate>(detail::parse_template(source))) {}

std::string Template::render(const Value& context, const RenderOptions& options) const {
  Renderer renderer(*parsed_, options);
  return renderer.render(context);
}

}  // namespace lmx::chat
