"""`GET /`: the service's one page. Plain HTML and a little vanilla JavaScript that calls the
JSON API with fetch(); no build step.

Everything the page shows that came from a user is put in with `textContent` (never
`innerHTML`), and the only server-side value, the instance name, is HTML-escaped. A
Content-Security-Policy allows exactly this page's own script and style (by hash).
"""

from __future__ import annotations

import base64
import hashlib
import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
form { display: flex; gap: .5rem; flex-wrap: wrap; margin: .5rem 0; }
input { padding: .3rem; } input[name=target_url] { flex: 1 1 18rem; }
table { border-collapse: collapse; width: 100%; }
td, th { padding: .25rem .5rem; text-align: left; }
tr + tr td { border-top: 1px solid #ddd; } .muted { color: #777; } .error { color: #b00; }
[hidden] { display: none; }
"""

SCRIPT = """
const $ = (sel) => document.querySelector(sel);
async function api(method, path, body) {
  const response = await fetch(path, {
    method, credentials: "same-origin",
    headers: body ? {"content-type": "application/json"} : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const detail = data && data.detail;
    const text = Array.isArray(detail)
      ? detail.map((e) => (e.loc || []).slice(1).join(".") + ": " + e.msg).join("; ")
      : (detail || response.statusText);
    throw new Error(text);
  }
  return data;
}
function say(text) { $("#message").textContent = text; }
function fields(form) { return Object.fromEntries(new FormData(form).entries()); }
function cell(row, text) { const td = row.insertCell(); td.textContent = text; return td; }

async function showLinks() {
  const body = $("#links tbody");
  body.replaceChildren();
  const {links} = await api("GET", "/api/links");
  for (const link of links) {
    const row = body.insertRow();
    const a = document.createElement("a");
    a.href = "/r/" + encodeURIComponent(link.slug);
    a.textContent = "/r/" + link.slug;
    row.insertCell().append(a);
    cell(row, link.target_url);
    cell(row, link.disabled ? "disabled" : "live");
    const clicks = cell(row, "…");
    api("GET", "/api/links/" + encodeURIComponent(link.slug) + "/stats")
      .then((s) => { clicks.textContent = String(s.clicks); })
      .catch(() => { clicks.textContent = "?"; });
    const toggle = document.createElement("button");
    toggle.textContent = link.disabled ? "enable" : "disable";
    toggle.onclick = () => change("PATCH", link.slug, {disabled: !link.disabled});
    const remove = document.createElement("button");
    remove.textContent = "delete";
    remove.onclick = () => change("DELETE", link.slug);
    row.insertCell().append(toggle, " ", remove);
  }
}
async function change(method, slug, body) {
  try { await api(method, "/api/links/" + encodeURIComponent(slug), body); await showLinks(); }
  catch (e) { say(e.message); }
}
async function refresh() {
  try {
    const me = await api("GET", "/api/me");
    $("#who").textContent = me.email;
    $("#anonymous").hidden = true; $("#member").hidden = false;
    await showLinks();
  } catch (e) {
    $("#anonymous").hidden = false; $("#member").hidden = true;
  }
}
function on(id, handler) {
  $(id).addEventListener("submit", async (event) => {
    event.preventDefault();
    say("");
    try { await handler(fields(event.target)); event.target.reset(); await refresh(); }
    catch (e) { say(e.message); }
  });
}
on("#signup", async (f) => {
  await api("POST", "/api/signup", f);
  await api("POST", "/api/login", f);
});
on("#login", (f) => api("POST", "/api/login", f));
on("#create", (f) => {
  const body = {target_url: f.target_url};
  if (f.slug) body.slug = f.slug;
  if (f.expires_at) body.expires_at = new Date(f.expires_at).toISOString();
  return api("POST", "/api/links", body);
});
$("#logout").addEventListener("click", async () => {
  await api("POST", "/api/logout");
  await refresh();
});
refresh();
"""

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rung links</title>
<style>{style}</style>
</head>
<body>
<h1>rung links</h1>
<p id="message" class="error" role="status"></p>
<section id="anonymous" hidden>
  <h2>Sign up</h2>
  <form id="signup">
    <input name="email" type="email" placeholder="email" required>
    <input name="password" type="password" placeholder="password (8+)" minlength="8" required>
    <button>sign up</button>
  </form>
  <h2>Log in</h2>
  <form id="login">
    <input name="email" type="email" placeholder="email" required>
    <input name="password" type="password" placeholder="password" required>
    <button>log in</button>
  </form>
</section>
<section id="member" hidden>
  <p>Logged in as <strong id="who"></strong> <button id="logout">log out</button></p>
  <h2>New link</h2>
  <form id="create">
    <input name="target_url" type="url" placeholder="https://..." required>
    <input name="slug" placeholder="slug (optional)" pattern="[A-Za-z0-9_\\-]{{3,64}}">
    <input name="expires_at" type="datetime-local" title="expires (optional)">
    <button>create</button>
  </form>
  <h2>My links</h2>
  <table id="links">
    <thead><tr><th>link</th><th>target</th><th>state</th><th>clicks</th><th></th></tr></thead>
    <tbody></tbody>
  </table>
</section>
<p class="muted">served by {instance}</p>
<script>{script}</script>
</body>
</html>
"""


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


CSP = (
    f"default-src 'none'; connect-src 'self'; script-src {_sha256(SCRIPT)}; "
    f"style-src {_sha256(STYLE)}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def render(instance: str) -> str:
    """The page, with the instance's name escaped into it."""
    return TEMPLATE.format(style=STYLE, script=SCRIPT, instance=html.escape(instance))


def routes(instance: str) -> APIRouter:
    router = APIRouter(tags=["page"])
    body = render(instance)

    @router.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        """The HTML page: sign up, log in, create links, see their clicks."""
        return HTMLResponse(body, headers={"content-security-policy": CSP})

    return router
