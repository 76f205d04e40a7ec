// The chat page's Markdown renderer (lmx/server/web/markdown.js) under node's test runner:
// every character of the model's text is escaped before any markup is made, and only
// http(s) links become anchors. (The page in a browser: tools/web-chat-check.)
import assert from 'node:assert/strict';
import test from 'node:test';
import { escapeHtml, renderMarkdown } from '../../lmx/server/web/markdown.js';

test('HTML in the text stays text', () => {
  for (const evil of ['<script>alert(1)</script>', '<img src=x onerror=alert(1)>', '<a href="x">y</a>',
                      '"><svg onload=alert(1)>', '&lt;already&gt; & <b>']) {
    const html = renderMarkdown(evil);
    assert.ok(!/<(script|img|svg|b|a)[\s>]/i.test(html), html);
    assert.ok(html.includes(escapeHtml(evil)), html);
  }
});

test('constructs', () => {
  assert.equal(renderMarkdown('# T *i*'), '<h1>T <em>i</em></h1>');
  assert.equal(renderMarkdown('a **b** `c < d` _e_\nf'),
               '<p>a <strong>b</strong> <code>c &lt; d</code> <em>e</em><br>f</p>');
  assert.equal(renderMarkdown('- x\n- y\n\n1. z'), '<ul><li>x</li><li>y</li></ul>\n<ol><li>z</li></ol>');
  assert.equal(renderMarkdown('> q'), '<blockquote>q</blockquote>');
  assert.equal(renderMarkdown('```js\nif (a && b) {}\n```'),
               '<pre><code class="language-js">if (a &amp;&amp; b) {}</code></pre>');
  // Still streaming: an open fence runs to the end.
  assert.equal(renderMarkdown('```\n<x>'), '<pre><code>&lt;x&gt;</code></pre>');
  // Identifiers and arithmetic are not emphasis.
  assert.equal(renderMarkdown('snake_case_name 2*3*4'), '<p>snake_case_name 2*3*4</p>');
});

test('links: http(s) only, the URL never rewritten', () => {
  assert.equal(renderMarkdown('[a _b_](https://x.org/_a_b_?q=1&r="2")'),
               '<p><a href="https://x.org/_a_b_?q=1&amp;r=&quot;2&quot;" target="_blank" ' +
               'rel="noopener noreferrer">a <em>b</em></a></p>');
  for (const bad of ['[x](javascript:alert(1))', '[x](data:text/html,hi)', '[x](//evil.org)'])
    assert.ok(!renderMarkdown(bad).includes('<a'), bad);
  // A language name that is not a plain word does not reach the attribute.
  assert.equal(renderMarkdown('```"><x\ny\n```'), '<pre><code>y</code></pre>');
});
