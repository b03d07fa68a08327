// The admin console: one page over the admin API (docs/console.md). Screens are chosen by the
// address's fragment (#/overview, #/conversation/ID, …); every figure and row comes from an
// /api/admin endpoint called with the signed-in user's token, so the API's row-level security
// decides what is shown. Actions are drawn only for the roles that may take them.

import { api, query, useSession } from "./api.js";
import { LANGUAGES, language, number, setLanguage, t, time, usd } from "./i18n.js";
import { startSession } from "./session.js";

const state = { session: null, me: null, orgId: null, view: null, generation: 0 };

// DOM ------------------------------------------------------------------------------------------

/** An element: `attrs` are attributes (`on…` are listeners; `style` an object of properties,
 * set through CSSOM, which the CSP's `style-src 'self'` allows; false/null are left out). */
function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "style") Object.assign(element.style, value);
    else if (value === true) element.setAttribute(name, "");
    else if (value !== false && value !== null && value !== undefined) element.setAttribute(name, value);
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function errorBox(error) {
  return h("div", { class: "error", role: "alert" }, error.message || String(error),
    error.code ? h("code", {}, ` ${error.code}`) : null);
}

function flash(node) {
  document.getElementById("flash")?.replaceChildren(...(node ? [node] : []));
}

/** Runs an action from `button`: disabled while it runs, an API error shown as worded. */
async function act(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  flash(null);
  try {
    await work();
  } catch (error) {
    flash(errorBox(error));
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

/** A button for an action of owners and admins (class `action`: viewers never get one). */
function actionButton(label, work, extra = {}) {
  const button = h("button", { type: "button", class: "action", ...extra }, label);
  button.addEventListener("click", () => act(button, () => work(button)));
  return button;
}

function badge(text, kind = text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

function table(headers, rows, attrs = {}) {
  if (rows.length === 0) return h("p", { class: "muted" }, t("empty"));
  return h("div", { class: "scroll" },
    h("table", attrs, h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))), h("tbody", {}, rows)));
}

function filterSelect(label, values, current, onchange) {
  return h("label", { class: "filter" }, label, " ",
    h("select", { onchange: (e) => onchange(e.target.value) },
      ["", ...values].map((v) => h("option", { value: v, selected: v === current }, v ? t(v) : t("all")))));
}

/** A list endpoint's rows with a "Load more" button that follows `next_cursor`. */
async function pagedList(path, params, renderRow, container) {
  const page = await api("GET", path + query(params));
  const more = h("div");
  container.append(...page.data.map(renderRow), more);
  if (page.next_cursor) {
    more.append(h("button", {
      type: "button",
      onclick: async (e) => {
        e.target.disabled = true;
        more.remove();
        await pagedList(path, { ...params, cursor: page.next_cursor }, renderRow, container).catch((err) => flash(errorBox(err)));
      },
    }, t("loadMore")));
  }
  return page;
}

// Roles ----------------------------------------------------------------------------------------

const org = () => state.me.orgs.find((o) => o.id === state.orgId);
const canAct = () => ["owner", "admin"].includes(org()?.role);
const isOwner = () => org()?.role === "owner";

// Sign-in --------------------------------------------------------------------------------------

function renderSignIn(error) {
  const session = state.session;
  const status = h("div", { id: "flash" }, error ? errorBox(error) : null);
  let form;
  if (session.kind === "local") {
    form = h("form", {
      onsubmit: async (e) => {
        e.preventDefault();
        await session.signInWithToken(e.target.token.value);
        await start();
      },
    },
    h("h2", {}, t("localTitle")),
    h("p", {}, t("localHelp")),
    h("pre", {}, "scripts/stack token aaaaaaaa-0000-0000-0000-000000000001 admin@acme.test"),
    h("label", {}, t("token"), h("textarea", { name: "token", required: true, rows: 4, "data-testid": "local-token" })),
    h("button", { type: "submit" }, t("useToken")));
  } else if (session.kind === "supabase") {
    const run = (button, work) => act(button, async () => {
      await work();
      await start();
    });
    form = h("form", {
      onsubmit: (e) => {
        e.preventDefault();
        run(e.submitter, () => session.signInWithPassword(e.target.email.value, e.target.password.value));
      },
    },
    h("h2", {}, t("signIn")),
    h("label", {}, t("email"), h("input", { name: "email", type: "email", required: true, autocomplete: "email" })),
    h("label", {}, t("password"), h("input", { name: "password", type: "password", autocomplete: "current-password" })),
    h("button", { type: "submit" }, t("withPassword")),
    h("button", {
      type: "button",
      onclick: (e) => {
        const email = e.target.form.email;
        if (!email.reportValidity()) return;
        act(e.target, async () => {
          await session.sendMagicLink(email.value);
          flash(h("p", { class: "ok" }, t("magicLinkSent")));
        });
      },
    }, t("magicLink")));
  } else {
    form = h("p", { class: "error" }, t("notConfigured"));
  }
  document.getElementById("app").replaceChildren(
    h("main", { class: "signin" }, h("h1", {}, t("title")), languageSelect(), status, form));
}

function languageSelect() {
  return h("label", { class: "filter" }, t("language"), " ",
    h("select", {
      "data-testid": "language",
      onchange: (e) => {
        setLanguage(e.target.value);
        state.me ? renderShell() : renderSignIn();
      },
    }, Object.entries(LANGUAGES).map(([code, name]) => h("option", { value: code, selected: code === language() }, name))));
}

// Shell ----------------------------------------------------------------------------------------

const NAV = [
  ["overview", "overview"],
  ["inbox", "inbox"],
  ["alerts", "alerts"],
  ["dead-letters", "deadLetters"],
  ["usage", "usage"],
  ["settings", "settings"],
  ["members", "members"],
  ["audit", "auditLog"],
];

function renderShell() {
  const orgs = state.me.orgs;
  const header = h("header", {},
    h("strong", { class: "brand" }, t("title")),
    h("label", { class: "filter" }, t("org"), " ",
      h("select", {
        "data-testid": "org",
        onchange: (e) => {
          state.orgId = e.target.value;
          localStorage.setItem("console.org", state.orgId);
          renderShell();
        },
      }, orgs.map((o) => h("option", { value: o.id, selected: o.id === state.orgId }, `${o.name} (${o.role})`)))),
    languageSelect(),
    h("span", { class: "muted user" }, state.me.user.email ?? ""),
    h("button", {
      type: "button",
      onclick: async () => {
        await state.session.signOut();
        state.me = null;
        renderSignIn();
      },
    }, t("signOut")));
  const nav = h("nav", {}, NAV.map(([path, key]) => h("a", { href: `#/${path}`, "data-screen": path }, t(key))));
  state.view = h("section", { id: "view" });
  document.getElementById("app").replaceChildren(header, nav, h("div", { id: "flash" }), h("main", {}, state.view));
  render();
}

const SCREENS = {
  overview,
  inbox,
  conversation,
  alerts,
  "dead-letters": deadLetters,
  usage,
  settings,
  members,
  audit,
};

async function render() {
  if (!state.me) return;
  const [name, id] = location.hash.replace(/^#\/?/, "").split("/");
  const screen = SCREENS[name];
  if (!screen) {
    location.hash = "#/overview";
    return;
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", link.dataset.screen === (name === "conversation" ? "inbox" : name));
  }
  const generation = ++state.generation;
  const view = h("section", { id: "view", "data-screen": name });
  state.view.replaceWith(view);
  state.view = view;
  flash(null);
  view.append(h("p", { class: "muted loading" }, t("loading")));
  try {
    const content = await screen(id);
    if (generation === state.generation) view.replaceChildren(...[content].flat().filter(Boolean));
  } catch (error) {
    if (generation === state.generation) view.replaceChildren(errorBox(error));
  }
}

// Screens --------------------------------------------------------------------------------------

function card(label, testid, value, extra) {
  return h("div", { class: "card" }, h("div", { class: "muted" }, label),
    h("div", { class: "figure", "data-testid": testid }, value), extra ?? null);
}

async function overview() {
  const o = await api("GET", "/api/admin/overview" + query({ org_id: state.orgId }));
  const budget = o.budget ?? {};
  const total = budget.monthly_tokens ?? 0;
  const used = budget.used_tokens ?? 0;
  const pct = total > 0 ? Math.min(100, Math.round((used * 100) / total)) : 0;
  const health = o.health ?? {};
  return [
    h("h1", {}, t("overview"), " · ", o.org?.name ?? ""),
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("div", { class: "muted" }, t("messagesMonth")),
        h("div", { class: "figure" }, h("span", { "data-testid": "inbound" }, number(o.messages.inbound)), ` ${t("inbound")} · `,
          h("span", { "data-testid": "outbound" }, number(o.messages.outbound)), ` ${t("outbound")}`)),
      card(t("activeContacts"), "active-contacts", number(o.active_contacts)),
      card(t("feedback"), "feedback", `👍 ${number(o.feedback.positive)} · 👎 ${number(o.feedback.negative)}`,
        h("div", { class: "muted" }, t("feedbackHint"))),
      card(t("aiCost"), "ai-cost", usd(o.ai.cost_usd),
        h("div", { class: "muted" }, `${number(o.ai.requests)} ${t("requests")} · ${number(o.ai.tokens)} ${t("tokens")}`)),
      card(t("whatsappCost"), "whatsapp-cost", usd(o.whatsapp.cost_usd),
        h("div", { class: "muted" }, `${number(o.whatsapp.charged_messages)} ${t("chargedMessages")}`)),
      card(t("openAlerts"), "open-alerts", number(o.open_alerts)),
      card(t("pendingDeadLetters"), "dead-letters", number(o.dead_letters))),
    h("div", { class: "card wide" }, h("div", { class: "muted" }, t("budget")),
      h("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct },
        h("div", { style: { width: `${pct}%` }, class: pct >= 90 ? "over" : "" })),
      h("div", { "data-testid": "budget" }, t("budgetUsed", { used: number(used), total: number(total), pct }))),
    h("div", { class: "card wide" }, h("h2", {}, t("health")),
      h("dl", { class: "pairs" },
        h("dt", {}, t("messagesLastHour")), h("dd", {}, number(health.messages_last_hour)),
        h("dt", {}, t("inboundPending")), h("dd", {}, number(health.inbound_pending)),
        h("dt", {}, t("failedLastDay")), h("dd", {}, number(health.failed_last_day)),
        h("dt", {}, t("lastInbound")), h("dd", {}, time(health.last_inbound_at)))),
    h("div", { class: "card wide" }, h("h2", {}, t("numbers")),
      table([t("number"), t("quality"), t("messagingLimit"), t("account"), t("restrictions")],
        (o.numbers ?? []).map((n) => h("tr", { "data-testid": "number" },
          h("td", {}, n.display_phone_number), h("td", {}, n.quality_event ?? t("noEvent")),
          h("td", {}, n.messaging_limit ?? t("noEvent")), h("td", {}, n.account_event ?? t("noEvent")),
          h("td", {}, n.restrictions.map((r) => r.restriction_type).join(", ") || t("noEvent")))))),
  ];
}

function windowText(c) {
  return c.window_open ? t("windowOpen", { time: time(c.window_expires_at) }) : t("windowClosed");
}

async function inbox(_, mode = sessionStorage.getItem("console.mode") ?? "") {
  const list = h("ul", { class: "rows", "data-testid": "conversations" });
  const container = h("div", {},
    h("h1", {}, t("inbox")),
    filterSelect(t("mode"), ["bot", "human"], mode, (value) => {
      sessionStorage.setItem("console.mode", value);
      render();
    }),
    list);
  await pagedList("/api/admin/conversations", { org_id: state.orgId, mode, limit: 25 }, (c) =>
    h("li", {}, h("a", { href: `#/conversation/${c.id}`, class: "row" },
      h("strong", {}, c.contact_name || contactId(c)), " ",
      h("span", { class: "muted" }, contactId(c)), " ",
      c.group_id ? [badge(t("group"), "window-closed"), " "] : null,
      badge(t(c.mode), c.mode), " ",
      badge(windowText(c), c.window_open ? "window-open" : "window-closed"),
      c.contact_opted_out ? badge(t("optedOut"), "window-closed") : null,
      h("div", { class: "muted" }, time(c.activity_at ?? c.last_message_at)))), list);
  return container;
}

// How a contact is shown: their phone number, else their WhatsApp username (a person with a
// username may withhold the number).
function contactId(c) {
  return c.contact_wa_id ? "+" + c.contact_wa_id : (c.contact_username ?? "");
}

function messageItem(m) {
  const error = m.error ? (typeof m.error === "string" ? m.error : m.error.message ?? JSON.stringify(m.error)) : null;
  return h("li", { class: `message ${m.direction}`, "data-testid": "message" },
    h("div", { class: "body" }, m.body ?? `[${m.type}]`),
    h("div", { class: "muted" }, time(m.created_at), " · ", badge(m.status, m.status), m.type !== "text" ? ` · ${m.type}` : "",
      m.reaction ? ` · ${m.reaction}` : ""),
    error ? h("div", { class: "error small" }, error) : null);
}

async function conversation(id) {
  const page = await api("GET", `/api/admin/conversations/${encodeURIComponent(id)}` + query({ limit: 20 }));
  const c = page.conversation;
  const messages = h("ul", { class: "messages", "data-testid": "messages" }, page.messages.map(messageItem));
  const older = h("div");
  const addOlder = (cursor) => {
    older.replaceChildren();
    if (!cursor) return;
    older.append(h("button", {
      type: "button",
      onclick: (e) => act(e.target, async () => {
        const next = await api("GET", `/api/admin/conversations/${encodeURIComponent(id)}` + query({ limit: 20, cursor }));
        messages.append(...next.messages.map(messageItem));
        addOlder(next.next_cursor);
      }),
    }, t("olderMessages")));
  };
  addOlder(page.next_cursor);

  const head = h("div", { class: "card wide" });
  const drawHead = () => head.replaceChildren(...h("div", {},
    h("h1", {}, c.contact_name || contactId(c)), h("span", { class: "muted" }, contactId(c)), " ",
    badge(t(c.mode), c.mode), " ", badge(windowText(c), c.window_open ? "window-open" : "window-closed"),
    c.contact_opted_out ? badge(t("optedOut"), "window-closed") : null,
    c.mode === "human" ? h("p", {}, t("humanNote")) : null,
    canAct() ? actionButton(c.mode === "human" ? t("toBot") : t("toHuman"), async () => {
      Object.assign(c, await api("POST", `/api/admin/conversations/${encodeURIComponent(id)}/handoff`, {
        mode: c.mode === "human" ? "bot" : "human",
      }));
      drawHead();
    }, { "data-testid": "handoff" }) : null).childNodes);
  drawHead();

  const reply = canAct() ? h("form", {
    class: "reply",
    onsubmit: (e) => {
      e.preventDefault();
      const form = e.target;
      act(form.querySelector("button"), async () => {
        const answer = await api("POST", `/api/admin/conversations/${encodeURIComponent(id)}/messages`, { text: form.text.value });
        messages.prepend(messageItem(answer.message));
        form.reset();
      });
    },
  },
  h("label", {}, t("reply"), h("textarea", { name: "text", required: true, maxlength: 4096, rows: 3, "data-testid": "reply-text" })),
  c.window_open ? null : h("p", { class: "muted" }, t("replyOutside")),
  h("button", { type: "submit", class: "action" }, t("send"))) : null;

  return [h("a", { href: "#/inbox" }, "← ", t("back")), head, reply, messages, older];
}

async function alerts(_, status = sessionStorage.getItem("console.alerts") ?? "") {
  const list = h("ul", { class: "rows", "data-testid": "alerts" });
  const row = (a) => {
    const item = h("li", { class: "row", "data-testid": "alert" },
      badge(a.severity, a.severity), " ", badge(a.status, a.status), " ", h("strong", {}, a.kind),
      h("div", {}, a.message),
      h("div", { class: "muted" }, time(a.created_at), a.acknowledged_at ? ` · ${t("acknowledgedBy", { time: time(a.acknowledged_at) })}` : ""),
      canAct() && a.status === "open"
        ? actionButton(t("acknowledge"), async () => item.replaceWith(row(await api("POST", `/api/admin/alerts/${a.id}/acknowledge`))))
        : null);
    return item;
  };
  const container = h("div", {}, h("h1", {}, t("alerts")),
    filterSelect(t("status"), ["open", "acknowledged", "resolved"], status, (value) => {
      sessionStorage.setItem("console.alerts", value);
      render();
    }), list);
  await pagedList("/api/admin/alerts", { org_id: state.orgId, status, limit: 50 }, row, list);
  return container;
}

async function deadLetters(_, status = sessionStorage.getItem("console.dlq") ?? "") {
  const list = h("ul", { class: "rows", "data-testid": "dead-letters" });
  const row = (d) => {
    const item = h("li", { class: "row", "data-testid": "dead-letter" },
      badge(d.status, d.status), " ", h("strong", {}, d.kind),
      h("div", {}, d.error),
      h("div", { class: "muted" }, `${number(d.attempts)} ${t("attempts")} · `, time(d.created_at),
        d.status === "pending" ? ` · ${t("nextAttempt", { time: time(d.next_attempt_at) })}` : ""),
      canAct() && d.status === "pending"
        ? actionButton(t("replay"), async () => item.replaceWith(row(await api("POST", `/api/admin/dead-letters/${d.id}/replay`))))
        : null,
      canAct() && ["pending", "retrying"].includes(d.status)
        ? actionButton(t("discard"), async () => {
          if (!confirm(t("confirmDiscard"))) return;
          item.replaceWith(row(await api("POST", `/api/admin/dead-letters/${d.id}/discard`)));
        }, { class: "action danger" })
        : null);
    return item;
  };
  const container = h("div", {}, h("h1", {}, t("deadLetters")),
    filterSelect(t("status"), ["pending", "retrying", "resolved", "discarded"], status, (value) => {
      sessionStorage.setItem("console.dlq", value);
      render();
    }), list);
  await pagedList("/api/admin/dead-letters", { org_id: state.orgId, status, limit: 50 }, row, list);
  return container;
}

/** Tokens per day as bars, inline SVG. */
function chart(days) {
  const width = 640;
  const height = 200;
  const max = Math.max(1, ...days.map((d) => d.tokens_in + d.tokens_out));
  const step = width / Math.max(days.length, 1);
  const bars = days.map((d, i) => {
    const tokens = d.tokens_in + d.tokens_out;
    const barHeight = Math.round((tokens / max) * (height - 20));
    return svg("g", {},
      svg("rect", { x: i * step + 2, y: height - barHeight, width: Math.max(step - 4, 1), height: barHeight, class: "bar-fill" },
        svg("title", {}, `${d.day}: ${number(tokens)} ${t("tokens")}, ${usd(d.cost_usd)}`)));
  });
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": t("perDay"), "data-testid": "usage-chart" },
    svg("text", { x: 4, y: 12, class: "axis" }, `${number(max)} ${t("tokens")}`), ...bars);
}

async function usage(_, range = JSON.parse(sessionStorage.getItem("console.usage") ?? "{}")) {
  const u = await api("GET", "/api/admin/usage" + query({ org_id: state.orgId, from: range.from, to: range.to }));
  const form = h("form", {
    class: "inline",
    onsubmit: (e) => {
      e.preventDefault();
      sessionStorage.setItem("console.usage", JSON.stringify({ from: e.target.from.value, to: e.target.to.value }));
      render();
    },
  },
  h("label", {}, t("from"), h("input", { type: "date", name: "from", value: u.from })),
  h("label", {}, t("to"), h("input", { type: "date", name: "to", value: u.to })),
  h("button", { type: "submit" }, t("show")));
  const totals = u.totals;
  return [
    h("h1", {}, t("usage")), form,
    h("p", { "data-testid": "usage-totals" }, `${t("totals")}: ${number(totals.requests)} ${t("requests")} · `,
      `${number(totals.tokens_in + totals.tokens_out)} ${t("tokens")} · ${usd(totals.cost_usd)}`),
    h("p", { "data-testid": "usage-whatsapp" }, `${t("whatsappCharges")}: ${number(totals.whatsapp_messages)} ${t("chargedMessages")} · ${usd(totals.whatsapp_cost_usd)}`),
    h("h2", {}, t("perDay")), chart(u.days),
    h("h2", {}, t("perContact")),
    h("p", { class: "muted", "data-testid": "usage-contacts-range" }, t("contactsRange", { from: u.contacts_from, to: u.contacts_to }),
      u.contacts_exact ? "" : " " + t("contactsApprox")),
    table([t("contact"), t("requests"), t("tokens"), t("cost")], u.contacts.map((c) => h("tr", {},
      h("td", {}, c.contact_name || contactId(c)), h("td", { class: "num" }, number(c.requests)),
      h("td", { class: "num" }, number(c.tokens)), h("td", { class: "num" }, usd(c.cost_usd))))),
  ];
}

// The settings form. The limits of each field (length, pattern, range) are not written here:
// they are read from the API's OpenAPI document (SettingsUpdate), which states the database's
// constraints (the rule; the API answers 400 naming the field for anything past them).
const SETTINGS = [
  ["system_prompt", "systemPrompt", { tag: "textarea", required: true, rows: 8 }],
  ["model", "model", { required: true }],
  ["fallback_model", "fallbackModel", { required: true }],
  ["enabled_tools", "enabledTools", { kind: "list" }],
  ["language", "assistantLanguage", { required: true }],
  ["timezone", "timezone", { required: true, kind: "timezone" }],
  ["reply_template", "replyTemplate", { kind: "nullable" }],
  ["reminder_template", "reminderTemplate", { kind: "nullable" }],
  ["template_language", "templateLanguage", { required: true }],
  ["rate_limit_per_minute", "rateLimit", { type: "number", required: true, kind: "integer" }],
  ["contact_daily_token_cap", "dailyCap", { type: "number", required: true, kind: "integer" }],
  ["welcome_message", "welcomeMessage", { tag: "textarea", kind: "nullable", rows: 3 }],
  ["staff_idle_minutes", "staffIdle", { type: "number", required: true, kind: "integer" }],
  ["answer_groups", "answerGroups", { type: "checkbox", kind: "boolean" }],
];

let settingsSchema = null;

/** SettingsUpdate's properties, from /api/admin/openapi.json (fetched once). */
async function settingsLimits() {
  settingsSchema ??= api("GET", "/api/admin/openapi.json").then(
    (doc) => doc.components.schemas.SettingsUpdate.properties,
    (error) => {
      settingsSchema = null;
      throw error;
    },
  );
  return settingsSchema;
}

// An anchored JSON Schema pattern (`^…$`) as the body of an HTML pattern= (anchored already,
// compiled with the `v` flag: inside a class, a literal - or / and the other syntax characters
// are escaped). Null for an unanchored one (a "contains" rule the browser cannot state).
function htmlPattern(pattern) {
  const anchored = /^\^(.*)\$$/.exec(pattern ?? "");
  if (!anchored) return null;
  return anchored[1].replace(/\[([^\]]*)\]/g, (_, set) =>
    "[" + [...set].map((c, i) => {
      if (c === "-" && i > 0 && i < set.length - 1) return c;
      return "()[]{}/-|".includes(c) ? "\\" + c : c;
    }).join("") + "]");
}

/** The input attributes of one field's schema: maxlength, pattern, min and max. */
function limitAttributes(schema = {}) {
  if (schema.type === "array") {
    const item = htmlPattern(schema.items?.pattern);
    const more = Math.max((schema.maxItems ?? 1000) - 1, 0);
    return { pattern: item && `\\s*(${item}\\s*(,\\s*${item}\\s*){0,${more}})?` };
  }
  return {
    maxlength: schema.maxLength,
    pattern: htmlPattern(schema.pattern),
    min: schema.minimum,
    max: schema.maximum,
  };
}

function fieldText(value, kind) {
  if (kind === "list") return (value ?? []).join(", ");
  return value === null || value === undefined ? "" : String(value);
}

function fieldValue(text, kind) {
  if (kind === "list") return text.split(",").map((s) => s.trim()).filter(Boolean);
  if (kind === "integer") return Number(text);
  if (kind === "nullable") return text.trim() === "" ? null : text.trim();
  return text;
}

function validTimezone(zone) {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

async function settings() {
  let [current, limits] = await Promise.all([
    api("GET", "/api/admin/settings" + query({ org_id: state.orgId })),
    settingsLimits(),
  ]);
  const editable = canAct();
  const fields = SETTINGS.map(([name, key, { tag = "input", kind, ...attrs }]) => {
    const input = h(tag, {
      name,
      id: `f-${name}`,
      ...limitAttributes(limits[name]),
      ...attrs,
      step: attrs.type === "number" ? 1 : null,
    });
    if (kind === "boolean") input.checked = current[name] === true;
    else input.value = fieldText(current[name], kind);
    if (kind === "timezone") {
      input.addEventListener("input", () => input.setCustomValidity(validTimezone(input.value) ? "" : t("invalid")));
    }
    return h("label", { for: `f-${name}` }, t(key), input);
  });
  const form = h("form", {
    class: "settings",
    "data-testid": "settings",
    novalidate: true,
    onsubmit: (e) => {
      e.preventDefault();
      if (!form.checkValidity()) {
        form.reportValidity();
        flash(h("p", { class: "error", role: "alert" }, t("invalid")));
        return;
      }
      const changes = {};
      for (const [name, , { kind }] of SETTINGS) {
        const element = form.elements[name];
        const value = kind === "boolean" ? element.checked : fieldValue(element.value, kind);
        if (JSON.stringify(value) !== JSON.stringify(current[name])) changes[name] = value;
      }
      act(e.submitter, async () => {
        if (Object.keys(changes).length === 0) return flash(h("p", { class: "ok" }, t("noChange")));
        current = await api("PUT", "/api/admin/settings" + query({ org_id: state.orgId }), changes);
        flash(h("p", { class: "ok", role: "status" }, t("saved")));
      });
    },
  },
  h("fieldset", { disabled: !editable }, fields),
  editable ? h("button", { type: "submit", class: "action" }, t("save")) : h("p", { class: "muted" }, t("readOnly")));
  return [h("h1", {}, t("settings")), form];
}

async function members() {
  const list = await api("GET", "/api/admin/members" + query({ org_id: state.orgId }));
  const owner = isOwner();
  const path = (m) => `/api/admin/members/${m.user_id}` + query({ org_id: state.orgId });
  const rows = list.data.map((m) => h("tr", {},
    h("td", {}, m.email ?? m.user_id),
    h("td", {}, owner
      ? h("select", {
        class: "action",
        "aria-label": t("changeRole"),
        onchange: (e) => act(e.target, async () => {
          await api("PATCH", path(m), { role: e.target.value });
          render();
        }),
      }, ["owner", "admin", "viewer"].map((r) => h("option", { value: r, selected: r === m.role }, r)))
      : m.role),
    h("td", {}, time(m.created_at)),
    owner ? h("td", {}, actionButton(t("remove"), async () => {
      if (!confirm(t("confirmRemove", { email: m.email ?? m.user_id }))) return;
      await api("DELETE", path(m));
      render();
    }, { class: "action danger" })) : null));
  const add = owner ? h("form", {
    class: "inline",
    onsubmit: (e) => {
      e.preventDefault();
      act(e.submitter, async () => {
        await api("POST", "/api/admin/members" + query({ org_id: state.orgId }), { email: e.target.email.value, role: e.target.role.value });
        render();
      });
    },
  },
  h("label", {}, t("email"), h("input", { name: "email", type: "email", required: true })),
  h("label", {}, t("role"), h("select", { name: "role" }, ["viewer", "admin", "owner"].map((r) => h("option", { value: r }, r)))),
  h("button", { type: "submit", class: "action" }, t("add"))) : null;
  return [h("h1", {}, t("members")),
    table([t("email"), t("role"), t("when"), owner ? "" : null].filter((x) => x !== null), rows, { "data-testid": "members" }),
    add ? h("h2", {}, t("addMember")) : null, add];
}

async function audit(_, action = sessionStorage.getItem("console.audit") ?? "") {
  const people = await api("GET", "/api/admin/members" + query({ org_id: state.orgId })).then(
    (m) => Object.fromEntries(m.data.map((x) => [x.user_id, x.email])), () => ({}));
  const body = h("tbody", {});
  const container = h("div", {}, h("h1", {}, t("auditLog")),
    h("form", {
      class: "inline",
      onsubmit: (e) => {
        e.preventDefault();
        sessionStorage.setItem("console.audit", e.target.action.value.trim());
        render();
      },
    }, h("label", {}, t("action"), h("input", { name: "action", value: action, placeholder: "settings.update" })),
    h("button", { type: "submit" }, t("show"))),
    h("div", { class: "scroll" }, h("table", { "data-testid": "audit" },
      h("thead", {}, h("tr", {}, [t("when"), t("actor"), t("action"), t("target"), t("details")].map((x) => h("th", {}, x)))), body)));
  await pagedList("/api/admin/audit-log", { org_id: state.orgId, action, limit: 50 }, (a) => h("tr", { "data-testid": "audit-row" },
    h("td", {}, time(a.created_at)), h("td", {}, people[a.actor_id] ?? a.actor_id ?? ""),
    h("td", {}, h("code", {}, a.action)), h("td", {}, a.target ?? ""),
    h("td", {}, h("code", { class: "details" }, JSON.stringify(a.details ?? {})))), body);
  return container;
}

// Start ----------------------------------------------------------------------------------------

async function start() {
  const token = await state.session.token();
  if (!token) return renderSignIn();
  try {
    state.me = await api("GET", "/api/admin/me");
  } catch (error) {
    state.me = null;
    if (error.status === 401) await state.session.signOut();
    return renderSignIn(error);
  }
  if (state.me.orgs.length === 0) {
    document.getElementById("app").replaceChildren(h("main", {}, h("p", {}, t("noOrgs"))));
    return;
  }
  const saved = localStorage.getItem("console.org");
  state.orgId = state.me.orgs.some((o) => o.id === saved) ? saved : state.me.orgs[0].id;
  renderShell();
}

async function boot() {
  setLanguage(language());
  state.session = await startSession();
  useSession(state.session);
  state.session.onChange(() => {
    state.session.token().then((token) => {
      if (Boolean(token) !== Boolean(state.me)) start();
    });
  });
  window.addEventListener("hashchange", render);
  await start();
}

boot();
