// Starts tests/server/scripted_server (its binary given) for the node checks in tools/
// and resolves its port, within 60 s; an exit before that ends the check with the
// server's code when it was 77 (skipped: no shared data), else 1.
import { spawn } from 'node:child_process';

export async function startScriptedServer(binary, args, env = process.env) {
  const server = spawn(binary, args, { stdio: ['pipe', 'pipe', 'inherit'], env });
  const port = await new Promise((resolve) => {
    let out = '';
    const early = (code) => { clearTimeout(timer); process.exit(code === 77 ? 77 : 1); };
    const timer = setTimeout(() => { console.error('no port within 60 s'); process.exit(1); }, 60000);
    server.on('exit', early);
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/port (\d+)/);
      if (!m) return;
      clearTimeout(timer);
      server.off('exit', early);
      resolve(Number(m[1]));
    });
  });
  return { server, port };
}
