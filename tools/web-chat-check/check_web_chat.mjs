// lmx's chat page (lmx/server/web) in Debian's headless chromium, driven by playwright-core
// (pinned in package.json; `npm ci` here first), against tests/server/scripted_server
// (stories260K; replies scripted per request, per-token delay, an API key):
//   - the page loads without the key: the model list fails and the error box says 401;
//     typing the key shows the model name and clears the error;
//   - a prompt typed and sent: the reply streams in (several renders before the end) and
//     ends as the scripted text;
//   - a reply holding Markdown and HTML: headings, bold, code, lists rendered; the
//     "<script>" and the <img onerror> shown as text, neither run;
//   - stop while a slow reply streams: the fetch is aborted, the message marked stopped,
//     and /metrics shows the request cancelled and the batch empty long before the
//     reply would have ended;
//   - the model's own words (no script): text streams in (then stopped: no token limit).
//
//   node tools/web-chat-check/check_web_chat.mjs build/tests/server/scripted_server
//
// Exit 0: all passed; 1: a check failed; 77: skipped (no playwright-core, no chromium, no
// shared data), with the reason on stdout.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startScriptedServer } from '../../tests/server/start_scripted_server.mjs';

const CHROMIUM = process.env.LMX_CHROMIUM || '/usr/bin/chromium';
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  console.log('SKIP: playwright-core is not installed (npm ci in tools/web-chat-check)');
  process.exit(77);
}
if (!existsSync(CHROMIUM)) {
  console.log(`SKIP: no ${CHROMIUM} (Debian's chromium package could not be installed)`);
  process.exit(77);
}

const KEY = 'web-check-key';
const dir = mkdtempSync(join(tmpdir(), 'lmx-web-'));
const scriptFile = join(dir, 'script.txt'), delayFile = join(dir, 'delay.txt');
const profile = join(dir, 'profile');  // an empty --user-data-dir
const script = (text, delayMs = 0) => { writeFileSync(scriptFile, text); writeFileSync(delayFile, String(delayMs)); };
script('');
const { server, port } = await startScriptedServer(process.argv[2], [scriptFile, delayFile],
                                                   { ...process.env, LMX_API_KEY: KEY });
const base = `http://127.0.0.1:${port}`;

async function metrics() {
  const r = await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${KEY}` } });
  const values = {};
  for (const line of (await r.text()).split('\n')) {
    const m = line.match(/^(lmx_[a-z_]+) ([0-9.e+-]+)$/);
    if (m) values[m[1]] = Number(m[2]);
  }
  return values;
}

async function until(what, fn, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let checks = 0;
const check = (fn) => { fn(); ++checks; };

const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const page = context.pages()[0] || await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // Counts renders of the last reply (each streamed delta re-renders it).
  await page.addInitScript(() => {
    window.__renders = 0;
    new MutationObserver(() => { window.__renders++; })
      .observe(document, { subtree: true, childList: true, characterData: true });
  });

  const response = await page.goto(base + '/');
  check(() => assert.equal(response.status(), 200));
  check(() => assert.match(response.headers()['content-security-policy'], /script-src 'self'/));

  // Without the key: the model list is refused, and the page says so.
  const error = page.locator('#error');
  await error.waitFor({ state: 'visible' });
  const errorText = await error.textContent();
  check(() => assert.match(errorText, /401 invalid_api_key/));
  check(() => assert.ok(!errorText.includes(KEY)));
  await page.fill('#api-key', KEY);
  await page.locator('#api-key').dispatchEvent('change');
  await until('the model name', async () => (await page.textContent('#model')) === 'stories260K');
  const errorShown = await error.isVisible();
  check(() => assert.equal(errorShown, false));

  const lastReply = () => page.locator('.message.assistant .content').last();
  async function ask(prompt) {
    await page.evaluate(() => { window.__renders = 0; });
    await page.fill('#prompt', prompt);
    await page.press('#prompt', 'Enter');
    await until('streaming to start', async () => (await page.getAttribute('body', 'data-state')) === 'streaming');
  }
  const idle = () => until('the reply to end', async () => (await page.getAttribute('body', 'data-state')) === 'idle', 60000);

  // A scripted reply, streamed token by token (20 ms each).
  const story = 'Once upon a time, there was a little dog named Max. Max liked to run in the park.';
  script(story, 20);
  await ask('Tell me a story');
  await idle();
  const renders = await page.evaluate(() => window.__renders);
  check(() => assert.ok(renders >= 5, `the reply rendered ${renders} times: not streamed`));
  const storyText = (await lastReply().textContent()).trim();
  check(() => assert.equal(storyText, story));

  // Markdown, and HTML in the reply shown as text.
  const markdown = '# Title\n\nSome **bold** and `x < y` here.\n\n- one\n- two\n\n' +
                   '<script>window.__xss = 1</script>\n<img src=x onerror="window.__xss = 2">';
  // 20 ms a step, as the others: undelayed, the reply could end between two of ask()'s 50 ms
  // polls, which then never saw 'streaming' (a fresh-clone `make test` failed so, session 23).
  script(markdown, 20);
  await ask('Format something');
  await idle();
  const reply = lastReply();
  const shown = {
    h1: await reply.locator('h1').textContent(),
    strong: await reply.locator('strong').textContent(),
    code: await reply.locator('code').textContent(),
    items: await reply.locator('li').allTextContents(),
    scripts: await reply.locator('script').count(),
    images: await reply.locator('img').count(),
    text: await reply.textContent(),
    xss: await page.evaluate(() => window.__xss),
  };
  check(() => assert.equal(shown.h1, 'Title'));
  check(() => assert.equal(shown.strong, 'bold'));
  check(() => assert.equal(shown.code, 'x < y'));
  check(() => assert.deepEqual(shown.items, ['one', 'two']));
  check(() => assert.equal(shown.scripts, 0));
  check(() => assert.equal(shown.images, 0));
  check(() => assert.ok(shown.text.includes('<script>window.__xss = 1</script>'), shown.text));
  check(() => assert.ok(shown.text.includes('<img src=x onerror="window.__xss = 2">'), shown.text));
  check(() => assert.equal(shown.xss, undefined));

  // Stop while a slow reply streams (400 tokens at 50 ms: 20 s if left alone).
  const long = 'The cat sat on the mat and the dog ran in the sun. '.repeat(30);
  script(long, 50);
  const before = await metrics();
  await ask('Go on and on');
  await until('some text', async () => (await lastReply().textContent()).length > 10);
  const stoppedAt = Date.now();
  await page.click('#stop');
  await idle();
  const after = await until('the cancellation in /metrics', async () => {
    const m = await metrics();
    return m.lmx_requests_cancelled_total === before.lmx_requests_cancelled_total + 1 && m.lmx_batch_size === 0 ? m : null;
  }, 10000);
  const cancelMs = Date.now() - stoppedAt;
  check(() => assert.ok(cancelMs < 5000, `the server took ${cancelMs} ms to cancel`));
  const stoppedClass = await page.locator('.message.assistant').last().getAttribute('class');
  check(() => assert.match(stoppedClass, /stopped/));
  const partial = await lastReply().textContent();
  check(() => assert.ok(partial.length > 0 && partial.length < long.length / 2, `${partial.length} of ${long.length} characters`));
  check(() => assert.equal(after.lmx_requests_admitted, 0));
  // Nothing more is decoded for it: the step counter stands still.
  await new Promise((r) => setTimeout(r, 300));
  const later = await metrics();
  check(() => assert.equal(later.lmx_decode_steps_total, after.lmx_decode_steps_total));

  // The model's own words (stories260K, sampled, no token limit): text streams in; stop.
  // 20 ms a step, so the reply is still streaming when the click comes (undelayed, the
  // tiny model can finish its story before the browser's next poll).
  script('', 20);
  await ask('Hello');
  await until('the model\'s text', async () => (await lastReply().textContent()).trim().length > 20);
  await page.click('#stop');
  await idle();
  const errorAtEnd = await error.isVisible();
  check(() => assert.equal(errorAtEnd, false));

  check(() => assert.deepEqual(pageErrors, []));
  await page.screenshot({ path: join(process.env.LMX_WEB_SCREENSHOT_DIR || dir, 'chat.png') });
  console.log(`web chat page: ${checks} checks passed`);
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  await context.close();
  server.stdin.end();
  rmSync(dir, { recursive: true, force: true });
}
