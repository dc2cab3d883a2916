// Bright Kitchen dashboard: keyboard shortcuts, live alerts (SSE), one-key verdicts. No build step.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
const zone = () => document.querySelector('meta[name="display-timezone"]').content;
// "2026-11-29 16:22:04" in the dashboard's display time zone (sv-SE formats dates as ISO).
const when = (iso) => new Intl.DateTimeFormat("sv-SE", {
  timeZone: zone(), year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit",
}).format(new Date(iso));
const typing = (e) => ["INPUT", "TEXTAREA", "SELECT"].includes(e.target.tagName);

async function postVerdict(id, verdict, reason) {
  const r = await fetch(`/api/v1/alerts/${id}/review`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify({ verdict, reason }),
  });
  if (!r.ok) throw new Error((await r.json()).detail || r.statusText);
  return r.json();
}

function restaurantCell(a) {
  const frag = document.createDocumentFragment();
  const small = document.createElement("small");
  small.textContent = `${a.district} · ${a.camera}`;
  frag.append(a.restaurant_name, document.createElement("br"), small);
  return frag;
}

// ---- review queue
function initQueue() {
  const tbody = document.querySelector("#queue tbody");
  if (!tbody) return;
  let sel = 0;
  const rows = () => [...tbody.querySelectorAll("tr.alert-row")];
  const select = (i) => {
    const rs = rows();
    if (!rs.length) return;
    sel = Math.max(0, Math.min(i, rs.length - 1));
    rs.forEach((r, j) => r.classList.toggle("selected", j === sel));
    rs[sel].scrollIntoView({ block: "nearest" });
  };
  tbody.addEventListener("click", (e) => {
    const row = e.target.closest("tr.alert-row");
    if (row && e.target.tagName !== "A") location.href = row.dataset.href;
  });
  const verdicts = { c: "confirmed", f: "false_positive", u: "unclear" };
  document.addEventListener("keydown", async (e) => {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const row = rows()[sel];
    if (e.key === "j") select(sel + 1);
    else if (e.key === "k") select(sel - 1);
    else if (e.key === "Enter" && row) location.href = row.dataset.href;
    else if (verdicts[e.key] && row) {
      let reason = "";
      if (e.key !== "c") {
        reason = prompt(`Reason for "${verdicts[e.key].replace("_", " ")}":`) || "";
        if (!reason.trim()) return;
      }
      try {
        await postVerdict(row.dataset.id, verdicts[e.key], reason);
        row.classList.remove("unreviewed");
        row.querySelector(".verdict").innerHTML =
          `<span class="v v-${verdicts[e.key]}">${verdicts[e.key].replace("_", " ")}</span>`;
        select(sel + 1);
      } catch (err) { alert(err.message); }
    }
  });
  select(0);

  // New alerts without reloading.
  const status = document.getElementById("live-status");
  const source = new EventSource("/api/v1/live");
  source.onopen = () => status && status.classList.add("on");
  source.onerror = () => status && status.classList.remove("on");
  source.addEventListener("alert", (msg) => {
    const a = JSON.parse(msg.data);
    if (tbody.querySelector(`tr[data-id="${a.id}"]`)) return;
    tbody.querySelector("tr.empty")?.remove();
    const tr = document.createElement("tr");
    tr.className = "alert-row unreviewed new";
    tr.dataset.href = `/alerts/${a.id}`;
    tr.dataset.id = a.id;
    const cells = [
      a.thumbnail ? Object.assign(document.createElement("img"), { className: "thumb", src: a.thumbnail.url, alt: "" }) : "",
      when(a.started_at),
      restaurantCell(a),
      a.rule_name || a.rule,
      Object.assign(document.createElement("span"), { className: `sev sev-${a.severity}`, textContent: a.severity }),
      a.score.toFixed(2),
      Object.assign(document.createElement("span"), { className: "v v-none", textContent: "unreviewed" }),
      Object.assign(document.createElement("a"), { href: `/alerts/${a.id}`, textContent: "open" }),
    ];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      if (i === 6) td.className = "verdict";
      if (typeof c === "string") td.textContent = c; else td.append(c);
      tr.append(td);
    });
    tbody.prepend(tr);
    const total = document.getElementById("total");
    if (total) total.textContent = String(Number(total.textContent) + 1);
    sel += 1;
    select(sel);
  });
}

// ---- alert page
function initAlert() {
  const form = document.getElementById("verdict-form");
  if (!form) return;
  const keys = { c: "confirmed", f: "false_positive", u: "unclear" };
  document.addEventListener("keydown", (e) => {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "n") { document.getElementById("next-link")?.click(); return; }
    const verdict = keys[e.key];
    if (!verdict) return;
    const reason = document.getElementById("reason");
    if (verdict !== "confirmed" && !reason.value.trim()) { reason.focus(); reason.placeholder = "a reason is required"; return; }
    form.querySelector(`button[value="${verdict}"]`).click();
  });
}

document.addEventListener("DOMContentLoaded", () => { initQueue(); initAlert(); });
