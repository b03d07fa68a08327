// The admin console in a real browser: headless Chromium driven by playwright-core, against the
// dev server on the test stack (real PostgreSQL + PostgREST), the Graph API faked by a tiny
// local server. Run by tests/browser/run (scripts/test's "browser" step). Screenshots of every
// screen go to target/console-screenshots/.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SHOTS = path.join(ROOT, "target/console-screenshots");
const PORT = Number(process.env.STACK_PORT_BASE || 15430) + 7;
const BASE = `http://127.0.0.1:${PORT}`;
const ACME = "11111111-1111-1111-1111-111111111111";
const ACME_CONVERSATION = "11111111-1111-1111-1111-000000000003";
const ACME_CONTACT = "11111111-1111-1111-1111-000000000002";
const ACME_OWNER = ["aaaaaaaa-0000-0000-0000-000000000001", "admin@acme.test"];
const ACME_VIEWER = ["aaaaaaaa-0000-0000-0000-000000000002", "viewer@acme.test"];
const BRAVO_OWNER = ["bbbbbbbb-0000-0000-0000-000000000001", "admin@bravo.test"];
const RUN = Date.now().toString(36);

let steps = 0;
const pageErrors = [];
/** Collects the page's uncaught errors and its Content-Security-Policy violations. */
function watch(page) {
  page.on("pageerror", (error) => pageErrors.push(error));
  page.on("console", (message) => {
    if (message.type() === "error" && /Content Security Policy/i.test(message.text())) pageErrors.push(message.text());
  });
}
async function step(name, work) {
  const started = Date.now();
  await work();
  steps += 1;
  console.log(`    ok ${name} (${Date.now() - started} ms)`);
}

function psql(sql) {
  return execFileSync("psql", [process.env.DATABASE_URL, "-Atq", "-v", "ON_ERROR_STOP=1", "-c", sql], { encoding: "utf8" }).trim();
}

function token([user, email]) {
  return execFileSync(path.join(ROOT, "scripts/stack"), ["token", user, email], { encoding: "utf8", env: { ...process.env, STACK_NAME: "test" } }).trim();
}

const digits = (text) => Number(text.replace(/[^0-9.]/g, ""));

/** The Graph API's send endpoint, as its docs show it (`POST /{version}/{phone-number-id}/messages`). */
function fakeGraph() {
  const sent = [];
  const server = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      const json = body ? JSON.parse(body) : {};
      response.setHeader("content-type", "application/json");
      if (request.method === "POST" && /\/messages$/.test(request.url) && json.type) {
        const id = `wamid.console-${RUN}-${sent.length}`;
        sent.push({ url: request.url, body: json, id });
        response.end(JSON.stringify({ messaging_product: "whatsapp", contacts: [{ input: json.to, wa_id: json.to }], messages: [{ id }] }));
      } else {
        response.end(JSON.stringify({ success: true }));
      }
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, sent, url: `http://127.0.0.1:${server.address().port}` })));
}

/** Supabase Auth's endpoints that supabase-js calls here (`/auth/v1/token`, `/otp`, `/logout`).
 * The password grant answers a session whose access token the API refuses (its signature is
 * spoiled): the console must refresh it (the refresh grant answers a good one) and go on. */
function fakeAuth() {
  const calls = [];
  const server = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      response.setHeader("access-control-allow-origin", "*");
      response.setHeader("access-control-allow-headers", "apikey, authorization, content-type, x-client-info, x-supabase-api-version");
      response.setHeader("access-control-allow-methods", "GET, POST, OPTIONS");
      if (request.method === "OPTIONS") return response.writeHead(204).end();
      const url = new URL(request.url, "http://auth");
      calls.push({ path: url.pathname, grant: url.searchParams.get("grant_type"), apikey: request.headers.apikey, body: body ? JSON.parse(body) : {} });
      response.setHeader("content-type", "application/json");
      if (url.pathname === "/auth/v1/token") {
        const good = token(ACME_OWNER);
        const access = url.searchParams.get("grant_type") === "password" ? good.slice(0, -4) + "AAAA" : good;
        const user = { id: ACME_OWNER[0], email: ACME_OWNER[1], aud: "authenticated", role: "authenticated" };
        return response.end(JSON.stringify({ access_token: access, token_type: "bearer", expires_in: 3600, refresh_token: `refresh-${calls.length}`, user }));
      }
      if (url.pathname === "/auth/v1/logout") return response.writeHead(204).end();
      return response.end("{}");
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, calls, url: `http://127.0.0.1:${server.address().port}` })));
}

async function startDevServer(graphUrl, authUrl) {
  const server = spawn(path.join(ROOT, "target/debug/dev-server"), [], {
    env: {
      ...process.env,
      PORT: String(PORT),
      APP_ENV: "test",
      LOG_LEVEL: "warn",
      GRAPH_API_BASE_URL: graphUrl,
      SUPABASE_URL: authUrl,
      WHATSAPP_ACCESS_TOKEN: "EAAconsoletest000000",
      WHATSAPP_APP_SECRET: "console-app-secret",
      WHATSAPP_VERIFY_TOKEN: "console-verify-token",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  for (let i = 0; i < 150; i++) {
    const ok = await fetch(`${BASE}/api/admin/openapi.json`).then((r) => r.ok, () => false);
    if (ok) return server;
    await new Promise((r) => setTimeout(r, 200));
  }
  server.kill();
  throw new Error("the dev server did not start");
}

/** What the test needs in Acme's data, beyond the seed: a message, an alert, a dead letter, AI usage. */
function seed() {
  psql(`update public.conversations set mode = 'bot', last_inbound_at = now() where id = '${ACME_CONVERSATION}'`);
  const message = psql(`insert into public.messages (org_id, conversation_id, contact_id, direction, wa_message_id, type, body, status)
    values ('${ACME}', '${ACME_CONVERSATION}', '${ACME_CONTACT}', 'inbound', 'wamid.in-${RUN}', 'text', 'Can I move my visit to Tuesday? ${RUN}', 'processed')
    returning id`);
  const alert = psql(`insert into public.alerts (org_id, kind, severity, message) values ('${ACME}', 'console_test', 'warning', 'Console alert ${RUN}') returning id`);
  const deadLetter = psql(`insert into public.dead_letter_queue (org_id, kind, ref, payload, error)
    values ('${ACME}', 'inbound_message', '${message}', jsonb_build_object('message_id', '${message}'), 'Console failure ${RUN}') returning id`);
  psql(`insert into public.ai_requests (org_id, contact_id, conversation_id, provider, model, tokens_in, tokens_out, cost_usd, status)
    values ('${ACME}', '${ACME_CONTACT}', '${ACME_CONVERSATION}', 'openai', 'gpt-6-luna', 1200, 300, 0.0123, 'success')`);
  return { message, alert, deadLetter };
}

function expectedOverview() {
  const month = `date_trunc('month', now(), 'UTC')`;
  const [inbound, outbound, contacts] = psql(`select count(*) filter (where direction = 'inbound'), count(*) filter (where direction = 'outbound'),
    count(distinct contact_id) filter (where direction = 'inbound') from public.messages where org_id = '${ACME}' and created_at >= ${month}`).split("|").map(Number);
  const alerts = Number(psql(`select count(*) from public.alerts where org_id = '${ACME}' and status = 'open'`));
  const deadLetters = Number(psql(`select count(*) from public.dead_letter_queue where org_id = '${ACME}' and status in ('pending', 'retrying')`));
  const cost = Number(psql(`select coalesce(sum(cost_usd), 0) from public.ai_requests where org_id = '${ACME}' and created_at >= ${month}`));
  const whatsapp = Number(psql(`select coalesce(sum(whatsapp_cost_usd), 0) from private.usage_totals where org_id = '${ACME}' and bucket = 'day' and contact_id is null and starts_at >= ${month}`));
  const numbers = Number(psql(`select count(*) from public.whatsapp_numbers where org_id = '${ACME}'`));
  const [positive, negative] = psql(`select count(*) filter (where reaction like '👍%'), count(*) filter (where reaction like '👎%')
    from public.messages where org_id = '${ACME}' and reply_to is not null and created_at >= ${month}`).split("|").map(Number);
  return { inbound, outbound, contacts, alerts, deadLetters, cost, whatsapp, numbers, feedback: `👍 ${positive} · 👎 ${negative}` };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Opens a screen from the navigation and waits until it has loaded. */
async function open(page, screen) {
  await page.click(`nav a[data-screen="${screen}"]`);
  await page.waitForSelector(`#view[data-screen="${screen}"] :is(h1, .error)`);
}

async function signInWithForm(browser, user, locale = "en-US") {
  const context = await browser.newContext({ locale, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watch(page);
  await page.goto(`${BASE}/admin`);
  await page.fill('[data-testid="local-token"]', token(user));
  await page.click('button[type="submit"]');
  await page.waitForSelector('#view[data-screen="overview"] h1');
  return page;
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const graph = await fakeGraph();
  const auth = await fakeAuth();
  const server = await startDevServer(graph.url, auth.url);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
  try {
    const ids = seed();

    await step("the local-only session path is the dev server's, and the config is public", async () => {
      const local = await fetch(`${BASE}/admin/local-session`).then((r) => r.json());
      assert.equal(local.local, true);
      const config = await fetch(`${BASE}/api/admin/config.json`).then((r) => r.json());
      assert.deepEqual(config, { supabase_url: auth.url, supabase_key: process.env.SUPABASE_ANON_KEY });
    });

    await step("the console's security headers are vercel.json's (connect-src: the local Supabase URL too)", async () => {
      const vercel = JSON.parse(readFileSync(path.join(ROOT, "vercel.json"), "utf8"));
      const wanted = vercel.headers.find((h) => h.source === "/admin").headers;
      for (const page of ["/admin", "/admin/app.js"]) {
        const response = await fetch(`${BASE}${page}`);
        for (const { key, value } of wanted) {
          const local = key === "Content-Security-Policy" ? value.replace(/(connect-src [^;]*)/, `$1 ${auth.url}`) : value;
          assert.equal(response.headers.get(key), local, `${page} ${key}`);
        }
      }
      assert.match(wanted.find((h) => h.key === "Content-Security-Policy").value, /frame-ancestors 'none'/);
    });

    await step("as deployed (no local path): Supabase Auth sign-in, a refreshed token, sign-out", async () => {
      const context = await browser.newContext({ locale: "en-US" });
      const page = await context.newPage();
      watch(page);
      await page.route("**/admin/local-session", (route) => route.fulfill({ status: 404, body: "" }));
      await page.goto(`${BASE}/admin`);
      await page.fill('input[name="email"]', ACME_OWNER[1]);
      await shot(page, "sign-in");
      await page.click("text=Email me a sign-in link");
      await page.waitForSelector("#flash >> text=Check your email");
      await page.fill('input[name="password"]', "correct horse");
      await page.click("text=Sign in with password");
      await page.waitForSelector('#view[data-screen="overview"] h1');
      const grants = auth.calls.filter((c) => c.path === "/auth/v1/token").map((c) => c.grant);
      assert.deepEqual(grants, ["password", "refresh_token"], "the refused token was refreshed");
      const otp = auth.calls.find((c) => c.path === "/auth/v1/otp");
      assert.equal(otp.body.email, ACME_OWNER[1]);
      assert.ok(auth.calls.every((c) => c.apikey === process.env.SUPABASE_ANON_KEY), "the publishable key from config.json");
      await page.click("header button");
      await page.waitForSelector('input[name="password"]');
      assert.ok(auth.calls.some((c) => c.path === "/auth/v1/logout"));
      await page.reload();
      await page.waitForSelector('input[name="password"]');
      await context.close();
    });

    const owner = await signInWithForm(browser, ACME_OWNER);

    await step("owner: the overview shows what the database holds", async () => {
      const want = expectedOverview();
      const text = async (id) => owner.textContent(`[data-testid="${id}"]`);
      assert.equal(digits(await text("inbound")), want.inbound);
      assert.equal(digits(await text("outbound")), want.outbound);
      assert.equal(digits(await text("active-contacts")), want.contacts);
      assert.equal(await text("feedback"), want.feedback);
      assert.equal(digits(await text("open-alerts")), want.alerts);
      assert.equal(digits(await text("dead-letters")), want.deadLetters);
      assert.equal(digits(await text("ai-cost")), Math.round(want.cost * 10000) / 10000);
      assert.equal(digits(await text("whatsapp-cost")), Math.round(want.whatsapp * 10000) / 10000);
      assert.equal(await owner.locator('[data-testid="number"]').count(), want.numbers);
      assert.match(await text("budget"), /tokens used/);
      // The budget bar's width (set through CSSOM: the CSP refuses style attributes).
      const pct = await owner.getAttribute('[role="progressbar"]', "aria-valuenow");
      assert.equal(await owner.$eval('[role="progressbar"] > div', (bar) => bar.style.width), `${pct}%`);
      await shot(owner, "overview");
    });

    await step("owner: the inbox lists the conversation with its window and mode", async () => {
      await open(owner, "inbox");
      const row = owner.locator(`a[href="#/conversation/${ACME_CONVERSATION}"]`);
      await row.waitFor();
      assert.match(await row.textContent(), /Alice Patient.*bot.*window open/s);
      await shot(owner, "inbox");
      await row.click();
      await owner.waitForSelector(`[data-testid="message"] >> text=Can I move my visit to Tuesday? ${RUN}`);
    });

    await step("owner: hands the conversation over to a human (recorded, audited)", async () => {
      await owner.click('[data-testid="handoff"]');
      await owner.waitForSelector('[data-testid="handoff"] >> text=Give back to the bot');
      assert.equal(psql(`select mode from public.conversations where id = '${ACME_CONVERSATION}'`), "human");
      assert.equal(psql(`select details->>'to' from public.audit_log_entries where action = 'conversation.handoff' and target = '${ACME_CONVERSATION}' order by created_at desc limit 1`), "human");
    });

    await step("owner: a staff reply goes through the Graph API and is recorded", async () => {
      const text = `Tuesday 10:00 works, see you then. ${RUN}`;
      await owner.fill('[data-testid="reply-text"]', text);
      await owner.click('form.reply button[type="submit"]');
      const sentItem = owner.locator('[data-testid="message"]').first();
      await sentItem.locator(`text=${text}`).waitFor();
      assert.match(await sentItem.textContent(), /sent/);
      assert.equal(graph.sent.length, 1);
      assert.equal(graph.sent[0].body.text.body, text);
      assert.equal(psql(`select status || ' ' || wa_message_id from public.messages where body = '${text}' and direction = 'outbound'`), `sent ${graph.sent[0].id}`);
      await shot(owner, "conversation");
    });

    await step("owner: acknowledges an alert", async () => {
      await open(owner, "alerts");
      const row = owner.locator('[data-testid="alert"]', { hasText: `Console alert ${RUN}` });
      await row.locator("button.action", { hasText: "Acknowledge" }).click();
      await owner.locator('[data-testid="alert"]', { hasText: `Console alert ${RUN}` }).locator(".badge-acknowledged").waitFor();
      assert.equal(psql(`select status || ' ' || acknowledged_by from public.alerts where id = '${ids.alert}'`), `acknowledged ${ACME_OWNER[0]}`);
      await shot(owner, "alerts");
    });

    await step("owner: replays a dead letter", async () => {
      await open(owner, "dead-letters");
      const row = owner.locator('[data-testid="dead-letter"]', { hasText: `Console failure ${RUN}` });
      await row.locator("button", { hasText: "Replay" }).click();
      await owner.locator('[data-testid="dead-letter"]', { hasText: `Console failure ${RUN}` }).locator(".badge-pending").waitFor({ state: "detached" });
      assert.equal(psql(`select count(*) from public.audit_log_entries where action = 'dead_letter.replay' and target = '${ids.deadLetter}'`), "1");
      await shot(owner, "dead-letters");
    });

    await step("owner: usage per day as a chart and per contact, with progress while it loads", async () => {
      await owner.route("**/api/admin/usage*", async (route) => {
        await new Promise((r) => setTimeout(r, 700));
        await route.continue();
      });
      await owner.click('nav a[data-screen="usage"]');
      await owner.waitForSelector("body[data-busy] #view .loading");
      await owner.waitForSelector('[data-testid="usage-chart"] rect');
      assert.match(await owner.textContent("table"), /Alice Patient/);
      assert.match(await owner.textContent('[data-testid="usage-contacts-range"]'), /^\d{4}-\d{2}-01 to \d{4}-\d{2}-\d{2}: /);
      assert.equal(await owner.getAttribute("body", "data-busy"), null);
      await owner.unroute("**/api/admin/usage*");
      await shot(owner, "usage");
    });

    await step("owner: settings are validated, saved, and audited", async () => {
      // The form's limits are the API's document's (SettingsUpdate), not the console's own.
      await owner.route("**/api/admin/openapi.json", async (route) => {
        const document = await (await route.fetch()).json();
        document.components.schemas.SettingsUpdate.properties.template_language.maxLength = 14;
        await route.fulfill({ json: document });
      });
      await open(owner, "settings");
      await owner.unroute("**/api/admin/openapi.json");
      assert.equal(await owner.getAttribute("#f-template_language", "maxlength"), "14");
      assert.equal(await owner.getAttribute("#f-rate_limit_per_minute", "max"), "10000");
      assert.equal(await owner.getAttribute("#f-model", "pattern"), "[A-Za-z0-9._:\\/\\-]{1,100}");
      await owner.fill("#f-rate_limit_per_minute", "0");
      await owner.click('form.settings button[type="submit"]');
      await owner.waitForSelector("#flash >> text=Check the highlighted fields.");
      const value = 11 + Math.floor(Math.random() * 80);
      await owner.fill("#f-rate_limit_per_minute", String(value));
      await owner.check("#f-answer_groups");
      await owner.click('form.settings button[type="submit"]');
      await owner.waitForSelector("#flash >> text=Saved.");
      assert.equal(psql(`select rate_limit_per_minute from public.assistant_settings where org_id = '${ACME}'`), String(value));
      assert.equal(psql(`select answer_groups from public.assistant_settings where org_id = '${ACME}'`), "t");
      assert.match(psql(`select details::text from public.audit_log_entries where org_id = '${ACME}' and action = 'settings.update' order by created_at desc limit 1`), /rate_limit_per_minute/);
      await owner.fill("#f-model", "gpt-5");
      await owner.click('form.settings button[type="submit"]');
      await owner.waitForSelector("#flash .error >> text=not offered on the free plan");
      await shot(owner, "settings");
    });

    await step("owner: the audit log shows the change; members list the org's users", async () => {
      await open(owner, "audit");
      await owner.locator('[data-testid="audit-row"]', { hasText: "settings.update" }).first().waitFor();
      assert.match(await owner.locator('[data-testid="audit-row"]').first().textContent(), /admin@acme\.test/);
      await shot(owner, "audit-log");
      await open(owner, "members");
      assert.match(await owner.textContent('[data-testid="members"]'), /viewer@acme\.test/);
      await shot(owner, "members");
    });

    await step("viewer (signed in through #local-token=): no action anywhere", async () => {
      const context = await browser.newContext({ locale: "en-US", viewport: { width: 390, height: 844 }, isMobile: true });
      const viewer = await context.newPage();
      watch(viewer);
      await viewer.goto(`${BASE}/admin/#local-token=${token(ACME_VIEWER)}`);
      await viewer.waitForSelector('#view[data-screen="overview"] h1');
      assert.equal(await viewer.evaluate(() => location.hash), "#/overview", "the token left the address bar");
      for (const screen of ["overview", "inbox", "alerts", "dead-letters", "usage", "settings", "members", "audit"]) {
        await open(viewer, screen);
        assert.equal(await viewer.locator(".action").count(), 0, `an action on ${screen}`);
        if (screen === "settings") assert.equal(await viewer.locator("form.settings fieldset[disabled]").count(), 1);
      }
      await viewer.goto(`${BASE}/admin/#/conversation/${ACME_CONVERSATION}`);
      await viewer.waitForSelector('[data-testid="message"]');
      assert.equal(await viewer.locator(".action, form.reply").count(), 0);
      assert.doesNotMatch(await viewer.textContent("#view"), /\bnull\b|undefined/);
      await shot(viewer, "viewer-conversation-phone");
      await context.close();
    });

    await step("Bravo's owner (Spanish browser): none of Acme's data", async () => {
      const bravo = await signInWithForm(browser, BRAVO_OWNER, "es-ES");
      assert.match(await bravo.textContent("nav"), /Resumen/);
      const orgs = await bravo.locator('[data-testid="org"] option').allTextContents();
      assert.deepEqual(orgs, ["Bravo Fitness (owner)"]);
      assert.match(await bravo.textContent("#view h1"), /Bravo Fitness/);
      await shot(bravo, "bravo-overview-es");
      for (const screen of ["inbox", "alerts", "dead-letters", "audit"]) {
        await open(bravo, screen);
        const text = await bravo.textContent("#view");
        assert.ok(!text.includes("Alice Patient") && !text.includes(RUN), `Acme's data on Bravo's ${screen}`);
      }
      await bravo.goto(`${BASE}/admin/#/conversation/${ACME_CONVERSATION}`);
      await bravo.waitForSelector("#view .error");
      assert.match(await bravo.textContent("#view .error"), /not found/);
      await shot(bravo, "bravo-acme-conversation-404");
    });

    await step("sign-out clears the session", async () => {
      await owner.click("header button");
      await owner.waitForSelector('[data-testid="local-token"]');
      await owner.reload();
      await owner.waitForSelector('[data-testid="local-token"]');
    });
    assert.deepEqual(pageErrors, [], "errors in the page");
  } finally {
    await browser.close();
    server.kill();
    graph.server.close();
    auth.server.close();
  }
  console.log(`browser: ${steps} steps passed; screenshots in ${path.relative(ROOT, SHOTS)}/`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
