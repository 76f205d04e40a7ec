#include "lmx/chat/parser.h"

#include <initializer_list>
#include <unordered_map>

#include "lmx/chat/lexer.h"
#include "lmx/chat/template_error.h"

namespace lmx::chat::detail {

namespace {

class Parser {
 public:
  explicit Parser(std::string_view source) : tokens_(tokenize(source)) {}

  ParsedTemplate run() {
    ParsedTemplate t;
    t.body = parse_body({}, "");
    t.names = std::move(names_);
    t.slots = std::move(slots_);
    return t;
  }

 private:
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::vector<std::string> names_;
  std::unordered_map<std::string, int> slots_;

  // --- token helpers -------------------------------------------------------------
  const Token& cur() const { return tokens_[pos_]; }
  const Token& peek(size_t k = 1) const { return tokens_[std::min(pos_ + k, tokens_.size() - 1)]; }
  Token next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }
  bool is_op(std::string_view op) const { return cur().type == TokenType::Op && cur().value == op; }
  bool is_name(std::string_view n) const { return cur().type == TokenType::Name && cur().value == n; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    ++pos_;
    return true;
  }
  bool skip_name(std::string_view n) {
    if (!is_name(n)) return false;
    ++pos_;
    return true;
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::Text: return "template data";
      case TokenType::VarBegin: return "begin of print statement";
      case TokenType::VarEnd: return "end of print statement";
      case TokenType::BlockBegin: return "begin of statement block";
      case TokenType::BlockEnd: return "end of statement block";
      case TokenType::Name: return "'" + t.value + "'";
      case TokenType::String: return "string";
      case TokenType::Int: return "integer";
      case TokenType::Float: return "float";
      case TokenType::Op: return "'" + t.value + "'";
      case TokenType::End: return "end of template";
    }
    return "token";
  }

  [[noreturn]] void fail(const std::string& message) const { fail_at(message, cur()); }
  [[noreturn]] static void fail_at(const std::string& message, const Token& t) {
    throw TemplateSyntaxError(message, t.line, t.column);
  }
  [[noreturn]] void unexpected(const std::string& expected) const {
    if (cur().type == TokenType::End) fail("unexpected end of template, expected " + expected + ".");
    fail("expected " + expected + ", got " + describe(cur()) + ".");
  }

  void expect_op(std::string_view op) {
    if (!skip_op(op)) unexpected("'" + std::string(op) + "'");
  }
  std::string expect_name() {
    if (cur().type != TokenType::Name) unexpected("name");
    return next().value;
  }
  void expect_block_end() {
    if (cur().type != TokenType::BlockEnd) unexpected("end of statement block");
    ++pos_;
  }

  int slot(const std::string& name) {
    auto [it, inserted] = slots_.emplace(name, static_cast<int>(names_.size()));
    if (inserted) names_.push_back(name);
    return it->second;
  }

  void enter() {
    if (++depth_ > kMaxParseDepth)
      fail("template nested too deeply (more than " + std::to_string(kMaxParseDepth) + " levels)");
  }
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) { p.enter(); }
    ~DepthGuard() { --p.depth_; }
  };
  // A left-deep chain (a + b + c, x|f|g, a.b.c) is as deep as it is long: each link
  // counts as one nesting level until the function building it returns.
  struct ChainGuard {
    Parser& p;
    int links = 0;
    explicit ChainGuard(Parser& parser) : p(parser) {}
    void grow() {
      ++links;
      p.enter();
    }
    ~ChainGuard() { p.depth_ -= links; }
  };

  // --- statements ------------------------------------------------------------------
  // Parses until `{% <one of end_tags>` (left unconsumed) or the end of the template.
  NodeList parse_body(std::initializer_list<std::string_view> end_tags, std::string_view innermost) {
    DepthGuard guard(*this);
    NodeList body;
    while (true) {
      const Token& t = cur();
      switch (t.type) {
        case TokenType::Text:
          body.push_back(std::make_unique<TextNode>(t.value, t.line));
          ++pos_;
          break;
        case TokenType::VarBegin: {
          ++pos_;
          int line = cur().line;
          NodePtr e = parse_tuple(true);
          if (cur().type != TokenType::VarEnd) unexpected("end of print statement");
          ++pos_;
          body.push_back(std::make_unique<PrintNode>(std::move(e), line));
          break;
        }
        case TokenType::BlockBegin: {
          const Token& tag = peek();
          if (tag.type != TokenType::Name) {
            ++pos_;
            fail("tag name expected");
          }
          for (std::string_view e : end_tags)
            if (tag.value == e) return body;
          ++pos_;
          if (!parse_statement(body)) {
            std::string msg = "Encountered unknown tag '" + tag.value + "'.";
            if (end_tags.size() > 0) {
              msg += " Jinja was looking for the following tags: ";
              size_t i = 0;
              for (std::string_view e : end_tags) {
                if (i > 0) msg += i + 1 == end_tags.size() ? " or " : ", ";
                msg += "'" + std::string(e) + "'";
                ++i;
              }
              msg += ". The innermost block that needs to be closed is '" + std::string(innermost) + "'.";
            }
            fail_at(msg, tag);
          }
          break;
        }
        case TokenType::End:
          if (end_tags.size() > 0) {
            std::string msg = "Unexpected end of template. Jinja was looking for the following tags: ";
            size_t i = 0;
            for (std::string_view e : end_tags) {
              if (i > 0) msg += i + 1 == end_tags.size() ? " or " : ", ";
              msg += "'" + std::string(e) + "'";
              ++i;
            }
            msg += ". The innermost block that needs to be closed is '" + std::string(innermost) + "'.";
            fail(msg);
          }
          return body;
        default: unexpected("template data or tag");
      }
    }
  }

  // Consumes `{% name` then `%}`.
  void end_tag(std::string_view name) {
    ++pos_;  // BlockBegin
    if (!skip_name(name)) unexpected("'" + std::string(name) + "'");
    expect_block_end();
  }

  // At the tag name (after BlockBegin). Returns false for an unknown tag.
  bool parse_statement(NodeList& out) {
    const Token& tag = cur();
    int line = tag.line;
    const std::string& name = tag.value;
    if (name == "if") {
      ++pos_;
      auto node = std::make_unique<IfNode>(line);
      NodePtr cond = parse_tuple(true);
      expect_block_end();
      while (true) {
        NodeList body = parse_body({"elif", "else", "endif"}, "if");
        node->branches.emplace_back(std::move(cond), std::move(body));
        ++pos_;
        std::string which = next().value;
        if (which == "elif") {
          cond = parse_tuple(true);
          expect_block_end();
          continue;
        }
        expect_block_end();
        if (which == "else") {
          node->else_body = parse_body({"endif"}, "if");
          end_tag("endif");
        }
        break;
      }
      out.push_back(std::move(node));
    } else if (name == "for") {
      ++pos_;
      auto node = std::make_unique<ForNode>(line);
      node->target = parse_assign_target(false);
      if (!skip_name("in")) unexpected("'in'");
      node->iter = parse_tuple(false);
      if (skip_name("if")) node->filter = parse_tuple(true);
      if (skip_name("recursive")) node->recursive = true;
      expect_block_end();
      node->loop_slot = slot("loop");
      node->body = parse_body({"endfor", "else"}, "for");
      ++pos_;
      if (next().value == "else") {
        expect_block_end();
        node->else_body = parse_body({"endfor"}, "for");
        end_tag("endfor");
      } else {
        expect_block_end();
      }
      out.push_back(std::move(node));
    } else if (name == "set") {
      ++pos_;
      Target target = parse_assign_target(true);
      if (skip_op("=")) {
        auto node = std::make_unique<SetNode>(line);
        node->target = std::move(target);
        node->value = parse_tuple(true);
        expect_block_end();
        out.push_back(std::move(node));
      } else {
        auto node = std::make_unique<SetBlockNode>(line);
        node->target = std::move(target);
        if (is_op("|")) node->filter = parse_filter_chain(nullptr);
        expect_block_end();
        node->body = parse_body({"endset"}, "set");
        end_tag("endset");
        out.push_back(std::move(node));
      }
    } else if (name == "macro") {
      ++pos_;
      auto node = std::make_unique<MacroNode>(line);
      node->name = expect_name();
      node->slot = slot(node->name);
      parse_macro_signature(*node);
      expect_block_end();
      node->body = parse_body({"endmacro"}, "macro");
      end_tag("endmacro");
      out.push_back(std::move(node));
    } else if (name == "call") {
      ++pos_;
      auto node = std::make_unique<CallBlockNode>(line);
      node->caller = std::make_unique<MacroNode>(line);
      node->caller->name = "caller";
      if (is_op("(")) parse_macro_signature(*node->caller);
      NodePtr call = parse_expression(true);
      if (call->kind != NodeKind::Call) fail_at("expected call", tag);
      node->call.reset(static_cast<CallNode*>(call.release()));
      expect_block_end();
      node->caller->body = parse_body({"endcall"}, "call");
      end_tag("endcall");
      out.push_back(std::move(node));
    } else if (name == "filter") {
      ++pos_;
      auto node = std::make_unique<FilterBlockNode>(line);
      --pos_;  // parse_filter_chain expects to sit on '|' or a name
      node->filter = parse_filter_chain(nullptr, true);
      expect_block_end();
      node->body = parse_body({"endfilter"}, "filter");
      end_tag("endfilter");
      out.push_back(std::move(node));
    } else if (name == "with") {
      ++pos_;
      auto node = std::make_unique<WithNode>(line);
      while (cur().type != TokenType::BlockEnd) {
        if (!node->assignments.empty()) expect_op(",");
        Target t = parse_assign_target(false);
        expect_op("=");
        node->assignments.emplace_back(std::move(t), parse_expression(true));
      }
      expect_block_end();
      node->body = parse_body({"endwith"}, "with");
      end_tag("endwith");
      out.push_back(std::move(node));
    } else if (name == "generation") {
      // transformers' AssistantTracker renders the body through caller(): a new scope.
      ++pos_;
      expect_block_end();
      auto node = std::make_unique<WithNode>(line);
      node->body = parse_body({"endgeneration"}, "generation");
      end_tag("endgeneration");
      out.push_back(std::move(node));
    } else if (name == "break" || name == "continue") {
      ++pos_;
      expect_block_end();
      out.push_back(std::make_unique<LoopControlNode>(name == "break" ? NodeKind::Break : NodeKind::Continue, line));
    } else {
      return false;
    }
    return true;
  }

  void parse_macro_signature(MacroNode& m) {
    expect_op("(");
    while (!skip_op(")")) {
      if (!m.params.empty()) {
        expect_op(",");
        if (skip_op(")")) break;
      }
      MacroParam p;
      p.name = expect_name();
      p.slot = slot(p.name);
      if (skip_op("=")) p.default_value = parse_expression(true);
      m.params.push_back(std::move(p));
    }
    m.varargs_slot = slot("varargs");
    m.kwargs_slot = slot("kwargs");
    m.caller_slot = slot("caller");
  }

  Target parse_assign_target(bool with_namespace) {
    Target first = parse_single_target(with_namespace);
    if (!is_op(",")) return first;
    Target tuple;
    tuple.kind = Target::Kind::Tuple;
    tuple.items.push_back(std::move(first));
    while (skip_op(",")) {
      if (cur().type != TokenType::Name && !is_op("(")) break;
      tuple.items.push_back(parse_single_target(with_namespace));
    }
    return tuple;
  }

  Target parse_single_target(bool with_namespace) {
    if (skip_op("(")) {
      Target t = parse_assign_target(with_namespace);
      expect_op(")");
      if (t.kind != Target::Kind::Tuple) {
        Target tuple;
        tuple.kind = Target::Kind::Tuple;
        tuple.items.push_back(std::move(t));
        return tuple;
      }
      return t;
    }
    Target t;
    t.name = expect_name();
    t.slot = slot(t.name);
    if (with_namespace && is_op(".") && peek().type == TokenType::Name) {
      ++pos_;
      t.kind = Target::Kind::Attr;
      t.attr = next().value;
    }
    if (t.name == "true" || t.name == "false" || t.name == "none" || t.name == "True" || t.name == "False" ||
        t.name == "None")
      fail("can't assign to special constant '" + t.name + "'");
    return t;
  }

  // --- expressions -----------------------------------------------------------------
  NodePtr parse_tuple(bool with_condexpr) {
    int line = cur().line;
    NodePtr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto tuple = std::make_unique<SeqNode>(NodeKind::TupleLit, line);
    tuple->items.push_back(std::move(first));
    while (skip_op(",")) {
      if (cur().type == TokenType::VarEnd || cur().type == TokenType::BlockEnd || is_op(")") ||
          is_name("if") || is_name("recursive"))
        break;
      tuple->items.push_back(parse_expression(with_condexpr));
    }
    return tuple;
  }

  NodePtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    ChainGuard chain(*this);
    NodePtr expr = parse_or();
    if (!with_condexpr) return expr;
    while (is_name("if")) {
      chain.grow();
      int line = cur().line;
      ++pos_;
      auto node = std::make_unique<CondExprNode>(line);
      node->then_expr = std::move(expr);
      node->test = parse_or();
      if (skip_name("else")) node->else_expr = parse_expression(true);
      expr = std::move(node);
    }
    return expr;
  }

  NodePtr parse_or() {
    ChainGuard chain(*this);
    NodePtr left = parse_and();
    while (is_name("or")) {
      int line = next().line;
      chain.grow();
      left = std::make_unique<BinaryNode>('o', std::move(left), parse_and(), line);
    }
    return left;
  }

  NodePtr parse_and() {
    ChainGuard chain(*this);
    NodePtr left = parse_not();
    while (is_name("and")) {
      int line = next().line;
      chain.grow();
      left = std::make_unique<BinaryNode>('a', std::move(left), parse_not(), line);
    }
    return left;
  }

  NodePtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      int line = next().line;
      return std::make_unique<UnaryNode>('n', parse_not(), line);
    }
    return parse_compare();
  }

  NodePtr parse_compare() {
    int line = cur().line;
    NodePtr first = parse_math1();
    std::unique_ptr<CompareNode> cmp;
    while (true) {
      char op;
      if (is_op("==")) {
        op = '=';
      } else if (is_op("!=")) {
        op = '!';
      } else if (is_op("<")) {
        op = '<';
      } else if (is_op("<=")) {
        op = 'l';
      } else if (is_op(">")) {
        op = '>';
      } else if (is_op(">=")) {
        op = 'g';
      } else if (is_name("in")) {
        op = 'i';
      } else if (is_name("not") && peek().type == TokenType::Name && peek().value == "in") {
        ++pos_;
        op = 'I';
      } else {
        break;
      }
      ++pos_;
      if (!cmp) {
        cmp = std::make_unique<CompareNode>(line);
        cmp->first = std::move(first);
      }
      cmp->rest.emplace_back(op, parse_math1());
    }
    if (cmp) return cmp;
    return first;
  }

  NodePtr parse_math1() {
    ChainGuard chain(*this);
    NodePtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      Token t = next();
      chain.grow();
      left = std::make_unique<BinaryNode>(t.value[0], std::move(left), parse_concat(), t.line);
    }
    return left;
  }

  NodePtr parse_concat() {
    ChainGuard chain(*this);
    NodePtr left = parse_math2();
    while (is_op("~")) {
      int line = next().line;
      chain.grow();
      left = std::make_unique<BinaryNode>('~', std::move(left), parse_math2(), line);
    }
    return left;
  }

  NodePtr parse_math2() {
    ChainGuard chain(*this);
    NodePtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      Token t = next();
      char op = t.value == "//" ? 'F' : t.value[0];
      chain.grow();
      left = std::make_unique<BinaryNode>(op, std::move(left), parse_pow(), t.line);
    }
    return left;
  }

  NodePtr parse_pow() {
    ChainGuard chain(*this);
    NodePtr left = parse_unary(true);
    while (is_op("**")) {
      int line = next().line;
      chain.grow();
      left = std::make_unique<BinaryNode>('P', std::move(left), parse_unary(true), line);
    }
    return left;
  }

  NodePtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    NodePtr node;
    int line = cur().line;
    if (skip_op("-")) {
      node = std::make_unique<UnaryNode>('-', parse_unary(false), line);
    } else if (skip_op("+")) {
      node = std::make_unique<UnaryNode>('+', parse_unary(false), line);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  NodePtr parse_primary() {
    const Token& t = cur();
    int line = t.line;
    switch (t.type) {
      case TokenType::Name: {
        std::string n = next().value;
        if (n == "true" || n == "True") return std::make_unique<LiteralNode>(Value::boolean(true), line);
        if (n == "false" || n == "False") return std::make_unique<LiteralNode>(Value::boolean(false), line);
        if (n == "none" || n == "None") return std::make_unique<LiteralNode>(Value::none(), line);
        auto node = std::make_unique<NameNode>(n, slot(n), line);
        if (n == "range") node->builtin = Builtin::Range;
        if (n == "dict") node->builtin = Builtin::Dict;
        if (n == "namespace") node->builtin = Builtin::Namespace;
        if (n == "raise_exception") node->builtin = Builtin::RaiseException;
        if (n == "strftime_now") node->builtin = Builtin::StrftimeNow;
        if (n == "joiner") node->builtin = Builtin::Joiner;
        if (n == "cycler") node->builtin = Builtin::Cycler;
        return node;
      }
      case TokenType::String: {
        std::string s = next().value;
        while (cur().type == TokenType::String) s += next().value;
        return std::make_unique<LiteralNode>(Value::string(std::move(s)), line);
      }
      case TokenType::Int: return std::make_unique<LiteralNode>(Value::integer(next().int_value), line);
      case TokenType::Float: return std::make_unique<LiteralNode>(Value::floating(next().float_value), line);
      case TokenType::Op:
        if (skip_op("(")) {
          if (skip_op(")")) return std::make_unique<SeqNode>(NodeKind::TupleLit, line);
          NodePtr first = parse_expression(true);
          if (skip_op(")")) return first;
          auto tuple = std::make_unique<SeqNode>(NodeKind::TupleLit, line);
          tuple->items.push_back(std::move(first));
          while (!skip_op(")")) {
            expect_op(",");
            if (skip_op(")")) break;
            tuple->items.push_back(parse_expression(true));
          }
          return tuple;
        }
        if (skip_op("[")) {
          auto list = std::make_unique<SeqNode>(NodeKind::ListLit, line);
          while (!skip_op("]")) {
            if (!list->items.empty()) {
              expect_op(",");
              if (skip_op("]")) break;
            }
            list->items.push_back(parse_expression(true));
          }
          return list;
        }
        if (skip_op("{")) {
          auto dict = std::make_unique<DictNode>(line);
          while (!skip_op("}")) {
            if (!dict->items.empty()) {
              expect_op(",");
              if (skip_op("}")) break;
            }
            NodePtr key = parse_expression(true);
            expect_op(":");
            dict->items.emplace_back(std::move(key), parse_expression(true));
          }
          return dict;
        }
        break;
      default: break;
    }
    if (t.type == TokenType::End) unexpected("an expression");
    fail("unexpected " + describe(t));
  }

  NodePtr parse_postfix(NodePtr node) {
    ChainGuard chain(*this);
    while (true) {
      if (is_op(".")) {
        chain.grow();
        int line = next().line;
        if (cur().type == TokenType::Name) {
          node = std::make_unique<GetAttrNode>(std::move(node), next().value, line);
        } else if (cur().type == TokenType::Int) {
          node = std::make_unique<GetItemNode>(
              std::move(node), std::make_unique<LiteralNode>(Value::integer(next().int_value), line), line);
        } else {
          unexpected("name or number");
        }
      } else if (is_op("[")) {
        chain.grow();
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        chain.grow();
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  NodePtr parse_subscript(NodePtr object) {
    int line = next().line;  // '['
    NodePtr parts[3];
    int part = 0;
    bool is_slice = false;
    while (!is_op("]")) {
      if (skip_op(":")) {
        is_slice = true;
        if (++part > 2) fail("invalid slice");
        continue;
      }
      if (parts[part]) unexpected("']'");
      parts[part] = parse_expression(true);
      if (!is_slice && is_op(",")) {
        // a[1, 2]: index by tuple
        auto tuple = std::make_unique<SeqNode>(NodeKind::TupleLit, line);
        tuple->items.push_back(std::move(parts[part]));
        while (skip_op(",")) {
          if (is_op("]")) break;
          tuple->items.push_back(parse_expression(true));
        }
        parts[part] = std::move(tuple);
      }
    }
    expect_op("]");
    if (!is_slice) {
      if (!parts[0]) fail("expected subscript expression");
      return std::make_unique<GetItemNode>(std::move(object), std::move(parts[0]), line);
    }
    auto s = std::make_unique<SliceNode>(line);
    s->object = std::move(object);
    s->start = std::move(parts[0]);
    s->stop = std::move(parts[1]);
    s->step = std::move(parts[2]);
    return s;
  }

  void parse_call_args(ArgList& a) {
    expect_op("(");
    bool first = true;
    while (!skip_op(")")) {
      if (!first) {
        expect_op(",");
        if (skip_op(")")) break;
      }
      first = false;
      if (skip_op("**")) {
        a.star_kwargs = parse_expression(true);
      } else if (skip_op("*")) {
        a.star_args = parse_expression(true);
      } else if (cur().type == TokenType::Name && peek().type == TokenType::Op && peek().value == "=") {
        std::string key = next().value;
        ++pos_;
        a.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!a.kwargs.empty()) fail("positional argument follows keyword argument");
        a.args.push_back(parse_expression(true));
      }
    }
  }

  NodePtr parse_call(NodePtr callee) {
    auto node = std::make_unique<CallNode>(cur().line);
    node->callee = std::move(callee);
    parse_call_args(node->args);
    return node;
  }

  NodePtr parse_filter_expr(NodePtr node) {
    ChainGuard chain(*this);
    while (true) {
      chain.grow();
      if (is_op("|")) {
        node = parse_filter_chain(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  // `| name(args) | name ...`; with `leading_name` the first filter has no '|'.
  NodePtr parse_filter_chain(NodePtr subject, bool leading_name = false) {
    ChainGuard chain(*this);
    bool first = true;
    while (is_op("|") || (leading_name && first)) {
      chain.grow();
      ++pos_;  // '|', or the `filter` tag name itself
      first = false;
      auto f = std::make_unique<FilterNode>(cur().line);
      f->name = expect_name();
      while (is_op(".") && peek().type == TokenType::Name) {
        ++pos_;
        f->name += '.';
        f->name += next().value;
      }
      f->id = filter_id(f->name);
      if (is_op("(")) parse_call_args(f->args);
      f->subject = std::move(subject);
      subject = std::move(f);
    }
    return subject;
  }

  NodePtr parse_test(NodePtr subject) {
    auto t = std::make_unique<TestNode>(next().line);  // 'is'
    if (skip_name("not")) t->negated = true;
    t->name = expect_name();
    while (is_op(".") && peek().type == TokenType::Name) {
      ++pos_;
      t->name += '.';
      t->name += next().value;
    }
    t->id = test_id(t->name);
    if (is_op("(")) {
      parse_call_args(t->args);
    } else if ((cur().type == TokenType::Name || cur().type == TokenType::String || cur().type == TokenType::Int ||
                cur().type == TokenType::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      DepthGuard guard(*this);
      t->args.args.push_back(parse_postfix(parse_primary()));
    }
    t->subject = std::move(subject);
    return t;
  }
};

}  // namespace

ParsedTemplate parse_template(std::string_view source) { return Parser(source).run(); }

}  // namespace lmx::chat::detail
