// Admin pages, on OpenAI's admin API (/v1/organization/...) with the admin key: projects,
// keys (created through a service account, revoked), rate and spend limits, usage and
// costs as charts. A server without an endpoint answers 404: the page says so and stays up.

import { api, keys as storedKeys } from "../api.js";
import { banner, clear, explain, field, h, table, when } from "../ui.js";

const DAY = 86400;

function needAdminKey(main, then) {
  if (storedKeys.admin()) return false;
  const key = h("input", { type: "password", autocomplete: "off", required: true });
  clear(main, h("form", { class: "card narrow", onsubmit: (e) => {
    e.preventDefault();
    storedKeys.setAdmin(key.value.trim());
    then(main);
  } }, h("h1", {}, "Admin key"), h("p", { class: "muted" }, "These pages use the admin API and need an admin key."),
  field("Admin key", key), h("button", { type: "submit" }, "Continue")));
  key.focus();
  return true;
}

async function allProjects() {
  return (await api.admin.get("/organization/projects", { limit: 100, include_archived: true })).data;
}

export async function projects(main) {
  if (needAdminKey(main, projects)) return;
  const name = h("input", { required: true, id: "project-name" });
  const list = h("div");
  const detail = h("div");
  clear(main, h("div", { class: "page" }, h("h1", {}, "Projects"),
    h("form", { class: "row card", onsubmit: async (e) => {
      e.preventDefault();
      try { await api.admin.post("/organization/projects", { name: name.value }); name.value = ""; load(); }
      catch (err) { banner(explain(err, "Creating projects")); }
    } }, field("New project", name), h("button", { type: "submit" }, "Create")), list, detail));
  async function load() {
    try {
      clear(list, table([
        { label: "Name", cell: (p) => h("button", { type: "button", class: "link", onclick: () => limits(detail, p) }, p.name) },
        { label: "Id", cell: (p) => h("code", {}, p.id) }, { label: "Status", cell: (p) => p.status },
        { label: "Created", cell: (p) => when(p.created_at) },
        { label: "", cell: (p) => p.status === "archived" ? "" : h("button", { type: "button", class: "danger", onclick: async () => {
          if (!confirm(`Archive ${p.name}?`)) return;
          try { await api.admin.post(`/organization/projects/${p.id}/archive`); load(); }
          catch (err) { banner(explain(err, "Archiving projects")); }
        } }, "Archive") },
      ], await allProjects(), "No projects."));
    } catch (err) { banner(explain(err, "The projects admin API")); }
  }
  await load();
}

async function limits(root, project) {
  const base = `/organization/projects/${project.id}`;
  const rate = h("div");
  const spend = h("div");
  clear(root, h("section", { class: "card" }, h("h2", {}, `Limits of ${project.name}`),
    h("h3", {}, "Rate limits"), rate, h("h3", {}, "Spend limit"), spend));
  try {
    const page = await api.admin.get(`${base}/rate_limits`, { limit: 100 });
    clear(rate, table([
      { label: "Model", cell: (r) => r.model },
      { label: "Requests / min", cell: (r) => {
        const input = h("input", { type: "number", min: 0, value: r.max_requests_per_1_minute, "aria-label": `Requests per minute for ${r.model}` });
        input.addEventListener("change", async () => {
          try { await api.admin.post(`${base}/rate_limits/${r.id}`, { max_requests_per_1_minute: Number(input.value) }); banner("Saved.", "ok"); }
          catch (err) { banner(explain(err)); }
        });
        return input;
      } },
      { label: "Tokens / min", cell: (r) => r.max_tokens_per_1_minute },
    ], page.data, "No rate limits."));
  } catch (err) { clear(rate, h("p", { class: "error-text" }, explain(err, "Rate limits"))); }
  const amount = h("input", { type: "number", min: 1, step: 1 });
  const current = h("p", { class: "muted" });
  try {
    const s = await api.admin.get(`${base}/spend_limit`);
    amount.value = s.threshold_amount / 100;
    current.textContent = `${(s.threshold_amount / 100).toFixed(2)} ${s.currency} per ${s.interval} (${s.enforcement?.status || ""})`;
  } catch (err) {
    current.textContent = err.status === 404 ? "No spend limit set (404)." : explain(err, "Spend limits");
  }
  clear(spend, current, h("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api.admin.post(`${base}/spend_limit`, { threshold_amount: Math.round(Number(amount.value) * 100), currency: "USD", interval: "month" });
      limits(root, project);
    } catch (err) { banner(explain(err, "Spend limits")); }
  } }, field("USD per month", amount), h("button", { type: "submit" }, "Set")));
}

const owner = (k) => k.owner?.service_account?.name || k.owner?.user?.name || "";

export async function keys(main) {
  if (needAdminKey(main, keys)) return;
  const pick = h("select", { id: "key-project" });
  const list = h("div");
  const saName = h("input", { id: "sa-name", required: true, placeholder: "my-service" });
  const secret = h("div", { "aria-live": "polite" });
  clear(main, h("div", { class: "page" }, h("h1", {}, "API keys"), field("Project", pick),
    h("form", { class: "row card", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const sa = await api.admin.post(`/organization/projects/${pick.value}/service_accounts`, { name: saName.value });
        saName.value = "";
        clear(secret, h("div", { class: "card ok" }, h("p", {}, `Key for ${sa.name} — copy it now, it is not shown again:`),
          h("code", { class: "secret", id: "new-secret" }, sa.api_key.value)));
        load();
      } catch (err) { banner(explain(err, "Service accounts")); }
    } }, field("New service account", saName), h("button", { type: "submit" }, "Create key")), secret, list));
  async function load() {
    try {
      const page = await api.admin.get(`/organization/projects/${pick.value}/api_keys`, { limit: 100 });
      clear(list, table([
        { label: "Name", cell: (k) => k.name }, { label: "Key", cell: (k) => h("code", {}, k.redacted_value) },
        { label: "Owner", cell: (k) => owner(k) || k.owner?.type || "" },
        { label: "Last used", cell: (k) => when(k.last_used_at) },
        { label: "", cell: (k) => h("button", { type: "button", class: "danger",
          "aria-label": `Revoke ${k.name}${owner(k) ? ` of ${owner(k)}` : ""}`, onclick: async () => {
          if (!confirm(`Revoke ${k.name} (${k.redacted_value})? Requests with it fail at once.`)) return;
          // A service account's key goes with its account (OpenAI refuses to delete it alone).
          const sa = k.owner?.type === "service_account" ? k.owner.service_account : null;
          const path = sa ? `service_accounts/${sa.id}` : `api_keys/${k.id}`;
          try { await api.admin.del(`/organization/projects/${pick.value}/${path}`); load(); }
          catch (err) { banner(explain(err, "Revoking keys")); }
        } }, "Revoke") },
      ], page.data, "No keys in this project."));
    } catch (err) { banner(explain(err, "The project keys admin API")); }
  }
  try {
    const ps = (await allProjects()).filter((p) => p.status !== "archived");
    clear(pick, ps.map((p) => h("option", { value: p.id }, p.name)));
    pick.addEventListener("change", load);
    if (ps.length) await load();
  } catch (err) { banner(explain(err, "The projects admin API")); }
}

const COLORS = ["#3b6fd8", "#e07b39", "#3aa372", "#b84fc2", "#c9a227", "#d64550", "#4aa3b5"];

/** A stacked bar chart (SVG) of `series` (name → value per bucket) over `labels`. */
export function barChart(title, labels, series, unit) {
  const names = Object.keys(series);
  const totals = labels.map((_, i) => names.reduce((s, n) => s + (series[n][i] || 0), 0));
  const max = Math.max(1, ...totals);
  const W = 640, H = 220, pad = 36, bw = (W - pad * 2) / Math.max(1, labels.length);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 30}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${title}: ${labels.map((l, i) => `${l} ${totals[i]}`).join(", ")}`);
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  el("line", { x1: pad, y1: H, x2: W - pad, y2: H, stroke: "#999" });
  el("text", { x: pad, y: 12, class: "axis" }, `max ${max.toLocaleString()} ${unit}`);
  labels.forEach((label, i) => {
    let y = H;
    names.forEach((n, j) => {
      const v = series[n][i] || 0;
      const bh = ((H - 20) * v) / max;
      y -= bh;
      if (v) el("rect", { x: pad + i * bw + 2, y, width: Math.max(1, bw - 4), height: bh, fill: COLORS[j % COLORS.length] })
        .append(Object.assign(document.createElementNS(ns, "title"), { textContent: `${n} ${label}: ${v}` }));
    });
    if (labels.length <= 16 || i % 2 === 0) el("text", { x: pad + i * bw + bw / 2, y: H + 16, "text-anchor": "middle", class: "axis" }, label);
  });
  const legend = h("ul", { class: "legend" }, names.map((n, j) => h("li", {},
    h("span", { class: "swatch", dataset: { color: j % COLORS.length } }), n)));
  return h("figure", { class: "chart" }, h("figcaption", {}, title), svg, legend);
}

function byBucket(page, key, value) {
  const labels = page.data.map((b) => new Date(b.start_time * 1000).toISOString().slice(5, 10));
  const series = {};
  page.data.forEach((b, i) => {
    for (const r of b.results) {
      const name = key(r) || "all";
      series[name] = series[name] || new Array(page.data.length).fill(0);
      series[name][i] += value(r);
    }
  });
  return [labels, series];
}

export async function usage(main) {
  if (needAdminKey(main, usage)) return;
  const days = h("select", { id: "usage-days", "aria-label": "Period" },
    [7, 14, 30].map((d) => h("option", { value: d }, `Last ${d} days`)));
  const charts = h("div", { class: "charts" });
  clear(main, h("div", { class: "page" }, h("div", { class: "row spread" }, h("h1", {}, "Usage and cost"), days), charts));
  async function load() {
    const n = Number(days.value);
    const start = Math.floor(Date.now() / 1000 / DAY) * DAY - (n - 1) * DAY;
    clear(charts);
    try {
      const tokens = await api.admin.get("/organization/usage/completions",
        { start_time: start, bucket_width: "1d", group_by: ["model"], limit: n });
      charts.append(barChart("Tokens by day and model", ...byBucket(tokens, (r) => r.model,
        (r) => (r.input_tokens || 0) + (r.output_tokens || 0)), "tokens"));
      charts.append(barChart("Requests by day and model", ...byBucket(tokens, (r) => r.model,
        (r) => r.num_model_requests || 0), "requests"));
    } catch (err) { charts.append(h("p", { class: "error-text" }, explain(err, "Usage"))); }
    try {
      const costs = await api.admin.get("/organization/costs", { start_time: start, bucket_width: "1d", group_by: ["line_item"], limit: n });
      charts.append(barChart("Cost by day (USD)", ...byBucket(costs, (r) => r.line_item,
        (r) => Number(r.amount?.value || 0)), "USD"));
    } catch (err) { charts.append(h("p", { class: "error-text" }, explain(err, "Costs"))); }
  }
  days.addEventListener("change", load);
  await load();
}
