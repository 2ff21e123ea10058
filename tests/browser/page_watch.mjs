// Opens one page in headless Chromium and reports what a person would see, as JSON lines on stdout:
//   {"event": "load", "load": n, ...}    each new page load, once complete (a new document: its timeOrigin changed)
//   {"event": "change", "load": n, ...}  within a load: the watched element's text or computed color changed, or
//                                        the refresh script got the server's hello ("server": its id)
//   {"event": "console" | "error", "message": ...}
// Each line also has "time" (ms since the epoch), "origin", "text", "color" and "server" where they apply.
// It never reloads the page itself. Usage: node page_watch.mjs URL SELECTOR [CHROMIUM]
// Ends, closing the browser, when stdin closes or on SIGTERM/SIGINT.
import { chromium } from "playwright-core";

const [url, selector, executablePath = "/usr/bin/chromium"] = process.argv.slice(2);
const say = (record) => process.stdout.write(JSON.stringify({ time: Date.now(), ...record }) + "\n");

let browser = null;
let closing = false;
async function close(code) {
  if (closing) return;
  closing = true;
  try { if (browser) await browser.close(); } catch (e) { /* gone already */ }
  process.exit(code);
}
process.stdin.on("end", () => close(0));
process.stdin.resume();
process.on("SIGTERM", () => close(0));
process.on("SIGINT", () => close(0));

try {
  browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
  const page = await browser.newPage();
  let load = 0;
  let last = null;
  page.on("console", (m) => say({ event: "console", message: m.text() }));
  page.on("pageerror", (e) => say({ event: "error", message: String(e) }));
  await page.goto(url, { waitUntil: "load", timeout: 60000 });
  const look = (sel) => {
    const el = document.querySelector(sel);
    const refresh = window.__hotreloadRefresh;
    return { origin: performance.timeOrigin, ready: document.readyState,
             text: el ? el.textContent : null, color: el ? getComputedStyle(el).color : null,
             server: refresh && refresh.server ? refresh.server : null };
  };
  const seen = ({ origin, text, color, server }) => ({ origin, text, color, server });
  for (;;) {
    let now = null;
    try {
      now = await page.evaluate(look, selector);
    } catch (e) {
      now = null;  // navigating: the old document is gone, the new one not there yet
    }
    if (now && now.ready === "complete") {
      if (!last || now.origin !== last.origin) {
        load += 1;
        say({ event: "load", load, ...seen(now) });
      } else if (now.text !== last.text || now.color !== last.color || now.server !== last.server) {
        say({ event: "change", load, ...seen(now) });
      }
      last = now;
    }
    await new Promise((done) => setTimeout(done, 50));
  }
} catch (e) {
  say({ event: "error", message: String(e && e.stack || e) });
  await close(1);
}
