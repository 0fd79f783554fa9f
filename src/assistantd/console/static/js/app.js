// The console's shell: sign-in, the hash router, one module per page.

import { api, keys } from "./api.js";
import { banner, clear, field, h } from "./ui.js";
import * as assistants from "./pages/assistants.js";
import * as chat from "./pages/chat.js";
import * as files from "./pages/files.js";
import * as admin from "./pages/admin.js";

const routes = {
  "/chat": chat.render,
  "/assistants": assistants.render,
  "/files": files.render,
  "/admin/projects": admin.projects,
  "/admin/keys": admin.keys,
  "/admin/usage": admin.usage,
};

const main = document.getElementById("main");

function signIn() {
  const key = h("input", { type: "password", name: "api-key", autocomplete: "off", required: true,
    placeholder: "sk-…" });
  const adminKey = h("input", { type: "password", name: "admin-key", autocomplete: "off",
    placeholder: "optional, for Projects, Keys and Usage" });
  const form = h("form", { class: "card narrow", onsubmit: async (e) => {
    e.preventDefault();
    keys.setApi(key.value.trim());
    if (adminKey.value.trim()) keys.setAdmin(adminKey.value.trim());
    try {
      await api.get("/models");
      banner(null);
      route();
    } catch (err) {
      keys.clear();
      banner(`Sign-in failed: ${err.message}`);
    }
  } },
  h("h1", {}, "Sign in"),
  h("p", { class: "muted" }, "The key stays in this browser tab (session storage) and is sent only to this server."),
  field("API key", key), field("Admin key", adminKey),
  h("button", { type: "submit" }, "Sign in"));
  clear(main, form);
  key.focus();
}

function route() {
  const signOut = document.getElementById("sign-out");
  document.getElementById("nav").hidden = !keys.api();
  signOut.hidden = !keys.api();
  if (!keys.api()) { signIn(); return; }
  const path = (location.hash.slice(1) || "/chat").split("?")[0];
  const render = routes[path] || chat.render;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#${path}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  banner(null);
  clear(main);
  render(main);
}

document.getElementById("sign-out").addEventListener("click", () => {
  keys.clear();
  location.hash = "#/chat";
  route();
});
window.addEventListener("hashchange", route);
route();
