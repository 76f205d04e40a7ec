// A small Markdown renderer for the chat page: the model's text becomes HTML with every
// character of it escaped first, so nothing the model writes can become markup of its own
// (a "<script>" in a reply is shown as text). Then a few constructs are recognised:
// fenced code blocks (an unclosed fence runs to the end, as while streaming), headings,
// bullet and numbered lists, block quotes, paragraphs with line breaks, and inline code,
// **bold**, *italic* / _italic_ and [links](http(s) URLs only).

export function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function emphasis(escaped) {
  return escaped
    .replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*\w])\*([^*\s][^*\n]*?)\*(?!\w)/g, "$1<em>$2</em>")
    .replace(/(^|[^_\w])_([^_\s][^_\n]*?)_(?!\w)/g, "$1<em>$2</em>");
}

// Inline constructs over escaped text: code spans and link targets are kept out of the
// emphasis rules.
const CODE_OR_LINK = /(`[^`\n]+`|\[[^\]\n]+\]\(https?:\/\/[^\s()]+\))/;
const LINK = /^\[([^\]\n]+)\]\((https?:\/\/[^\s()]+)\)$/;
function inline(escaped) {
  return escaped
    .split(CODE_OR_LINK)
    .map((part, i) => {
      if (i % 2 === 0) return emphasis(part);
      if (part.startsWith("`")) return "<code>" + part.slice(1, -1) + "</code>";
      const [, label, url] = LINK.exec(part);
      return `<a href="${url}" target="_blank" rel="noopener noreferrer">${emphasis(label)}</a>`;
    })
    .join("");
}

const FENCE = /^\s*```/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d+[.)]\s+(.*)$/;
const QUOTE = /^&gt;\s?(.*)$/;

export function renderMarkdown(text) {
  const lines = escapeHtml(text.replace(/\r\n?/g, "\n")).split("\n");
  const out = [];
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) out.push("<p>" + paragraph.map(inline).join("<br>") + "</p>");
    paragraph = [];
  };
  for (let i = 0; i < lines.length; ) {
    const line = lines[i];
    let m;
    if (FENCE.test(line)) {
      flush();
      const lang = line.replace(FENCE, "").trim();
      const code = [];
      for (++i; i < lines.length && !FENCE.test(lines[i]); ++i) code.push(lines[i]);
      ++i;  // the closing fence
      const cls = /^[\w+-]+$/.test(lang) ? ` class="language-${lang}"` : "";
      out.push(`<pre><code${cls}>` + code.join("\n") + "</code></pre>");
    } else if ((m = HEADING.exec(line))) {
      flush();
      const level = m[1].length;
      out.push(`<h${level}>` + inline(m[2]) + `</h${level}>`);
      ++i;
    } else if (BULLET.test(line) || NUMBERED.test(line)) {
      flush();
      const rule = BULLET.test(line) ? BULLET : NUMBERED;
      const tag = rule === BULLET ? "ul" : "ol";
      const items = [];
      for (; i < lines.length && (m = rule.exec(lines[i])); ++i) items.push("<li>" + inline(m[1]) + "</li>");
      out.push(`<${tag}>` + items.join("") + `</${tag}>`);
    } else if (QUOTE.test(line)) {
      flush();
      const quoted = [];
      for (; i < lines.length && (m = QUOTE.exec(lines[i])); ++i) quoted.push(inline(m[1]));
      out.push("<blockquote>" + quoted.join("<br>") + "</blockquote>");
    } else if (line.trim() === "") {
      flush();
      ++i;
    } else {
      paragraph.push(line);
      ++i;
    }
  }
  flush();
  return out.join("\n");
}
