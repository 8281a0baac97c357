// The Lifecycle dashboard: one page, hash routes, data from lifecycled's JSON API
// (/api/v1, the gRPC read API in the protobuf JSON mapping), live alerts over
// Server-Sent Events, charts with Apache ECharts.
"use strict";
(function () {
  let lang = localStorage.getItem("lifecycle.lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
  const charts = [];
  let stream = null;
  let routeGen = 0;  // each navigation's number: a page whose data arrives late draws nothing
  const stale = (gen) => gen !== routeGen;

  const t = (k) => (I18N[lang][k] ?? I18N.en[k] ?? k);
  const short = (v) => String(v || "").replace(/^(STAGE|VALUE_GRADE|TIER|ALERT_KIND|SEVERITY|DEAL_LOST_REASON|WARRANTY_STATUS|TASK_STATUS|FOLLOW_UP_KIND|AGE_BAND|COMPLAINT_SEVERITY|VALUE_CLASS)_/, "");
  const word = (v) => t(short(v));
  const keyWord = (k) => t(k);  // summary keys are short names already
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const day = (ts) => (ts ? String(ts).slice(0, 10) : "");
  const money = (minor) => (Number(minor || 0) / 100).toLocaleString(lang === "zh" ? "zh-CN" : "en", { maximumFractionDigits: 0 });
  const STAGES = ["PROSPECT", "LOST_PROSPECT", "NEW", "ACTIVE", "LOYAL", "AT_RISK", "CHURNED", "WON_BACK"];
  const AT_RISK_P = 0.85, CHURNED_P = 0.15;  // deploy/config/domain.toml: at_risk_p, churned_p

  function token() { return document.getElementById("token").value.trim(); }
  async function api(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== "" && v != null) q.append(k, v);
    const headers = token() ? { Authorization: "Bearer " + token() } : {};
    const r = await fetch("/api/v1/" + path + (q.toString() ? "?" + q : ""), { headers });
    const body = await r.json();
    if (!r.ok) throw new Error(`${r.status} ${body.code}: ${body.message}`);
    return body;
  }
  function showError(e) {
    const el = document.getElementById("error");
    el.textContent = String(e.message || e);
    el.hidden = false;
    setTimeout(() => (el.hidden = true), 6000);
  }
  function freshness(f) {
    // The newest stream time over the partitions: what the views reflect.
    const times = ((f && f.partitions) || []).map((p) => p.streamTime).filter(Boolean).sort();
    const el = document.getElementById("freshness");
    el.textContent = times.length ? `${t("views as of")} ${times[times.length - 1].replace("T", " ").slice(0, 16)}` : "";
  }
  function chart(id, option) {
    const el = document.getElementById(id);
    if (!el || !window.echarts) return;
    const c = echarts.init(el);
    c.setOption(Object.assign({ tooltip: { trigger: "item" }, animation: false }, option));
    charts.push(c);
    return c;
  }
  function dims(summary) {
    const out = {};
    for (const d of summary.dimensions || []) out[d.dimension.replace("DIMENSION_", "")] = d.counts || [];
    return out;
  }
  const pie = (counts) => ({ series: [{ type: "pie", radius: ["35%", "70%"], data: counts.map((c) => ({ name: keyWord(c.key), value: Number(c.customers) })) }] });
  const bar = (counts, label) => ({
    grid: { left: 110, right: 20, top: 10, bottom: 30 }, tooltip: { trigger: "axis" },
    xAxis: { type: "value" }, yAxis: { type: "category", data: counts.map((c) => label(c.key)) },
    series: [{ type: "bar", data: counts.map((c) => Number(c.customers)) }],
  });

  async function overview(view) {
    const gen = routeGen;
    const s = await api("summary");
    if (stale(gen)) return;
    freshness(s.freshness);
    const d = dims(s);
    const stageCount = Object.fromEntries((d.STAGE || []).map((c) => [c.key, Number(c.customers)]));
    view.innerHTML = `<h1>${t("overview.title")}</h1>
      <div class="kpis">
        <div class="kpi"><div class="muted">${t("customers")}</div><div class="v" id="kpi-customers">${Number(s.customers)}</div></div>
        <div class="kpi"><div class="muted">${t("at risk")}</div><div class="v" id="kpi-at-risk">${stageCount.AT_RISK || 0}</div></div>
        <div class="kpi"><div class="muted">${t("churned")}</div><div class="v" id="kpi-churned">${stageCount.CHURNED || 0}</div></div>
        <div class="kpi"><div class="muted">${t("lost prospects")}</div><div class="v">${stageCount.LOST_PROSPECT || 0}</div></div>
      </div>
      <div class="grid">
        <div class="card"><h2>${t("chart.funnel")}</h2><div id="c-funnel" class="chart"></div>
          <table id="stage-counts">${STAGES.map((k) => `<tr data-key="${k}"><td>${word(k)}</td><td class="n">${stageCount[k] || 0}</td></tr>`).join("")}</table></div>
        <div class="card"><h2>${t("chart.flow")}</h2><div id="c-flow" class="chart"></div></div>
        <div class="card"><h2>${t("chart.grade")}</h2><div id="c-grade" class="chart"></div></div>
        <div class="card"><h2>${t("chart.tier")}</h2><div id="c-tier" class="chart"></div></div>
        <div class="card"><h2>${t("chart.rfm")}</h2><div id="c-rfm" class="chart"></div></div>
        <div class="card"><h2>${t("chart.rfmgrid")}</h2><div id="c-rfmgrid" class="chart"></div></div>
        <div class="card"><h2>${t("chart.region")}</h2><div id="c-region" class="chart"></div></div>
        <div class="card"><h2>${t("chart.model")}</h2><div id="c-model" class="chart"></div></div>
        <div class="card"><h2>${t("chart.activity")}</h2><div id="c-activity" class="chart"></div></div>
        <div class="card"><h2>${t("chart.warranty")}</h2><div id="c-warranty" class="chart"></div></div>
        <div class="card"><h2>${t("chart.age")}</h2><div id="c-age" class="chart"></div></div>
        <div class="card"><h2>${t("chart.alerts")}</h2><div id="c-alerts" class="chart"></div></div>
      </div>`;
    chart("c-funnel", { series: [{ type: "funnel", sort: "none", data: STAGES.map((k) => ({ name: word(k), value: stageCount[k] || 0 })) }] });
    const flow = (d.STAGE_TRANSITION || []).filter((c) => !c.key.startsWith("UNSPECIFIED")).sort((a, b) => b.customers - a.customers).slice(0, 15).reverse();
    chart("c-flow", bar(flow, (k) => k.split("->").map(keyWord).join(" → ")));
    chart("c-grade", pie(d.GRADE || []));
    chart("c-tier", pie(d.TIER || []));
    chart("c-rfm", bar((d.RFM_SEGMENT || []).slice().sort((a, b) => a.customers - b.customers), (k) => k));
    // Recency x frequency (1..5 each; 5 is best), customers per cell.
    const cells = (d.RFM_GRID || []).filter((c) => c.key !== "none").map((c) => {
      const m = /^R(\d)F(\d)$/.exec(c.key);
      return m ? [Number(m[2]) - 1, Number(m[1]) - 1, Number(c.customers)] : null;
    }).filter(Boolean);
    chart("c-rfmgrid", {
      tooltip: { position: "top" }, grid: { left: 60, right: 20, top: 10, bottom: 60 },
      xAxis: { type: "category", name: "F", data: ["1", "2", "3", "4", "5"] },
      yAxis: { type: "category", name: "R", data: ["1", "2", "3", "4", "5"] },
      visualMap: { min: 0, max: Math.max(1, ...cells.map((c) => c[2])), calculable: true, orient: "horizontal", left: "center", bottom: 0, itemHeight: 120 },
      series: [{ type: "heatmap", data: cells, label: { show: true } }],
    });
    chart("c-region", pie(d.REGION || []));
    chart("c-model", pie(d.VEHICLE_MODEL || []));
    const act = (d.ACTIVITY_BUCKET || []).slice().sort((a, b) => Number(a.key) - Number(b.key));
    const revenue = act.reduce((n, c) => n + Number(c.revenueMinor), 0) || 1;
    chart("c-activity", {
      tooltip: { trigger: "axis" }, legend: { data: [t("customers"), t("revenue")] },
      xAxis: { type: "category", data: act.map((c) => `${c.key} ${t("visits")}`) },
      yAxis: [{ type: "value" }, { type: "value", max: 100, axisLabel: { formatter: "{value}%" } }],
      series: [{ name: t("customers"), type: "bar", data: act.map((c) => Number(c.customers)) },
               { name: t("revenue"), type: "line", yAxisIndex: 1, data: act.map((c) => +(100 * Number(c.revenueMinor) / revenue).toFixed(1)) }],
    });
    chart("c-warranty", pie(d.WARRANTY_STATUS || []));
    chart("c-age", bar((d.AGE_BAND || []).slice().sort((a, b) => a.key.localeCompare(b.key)), (k) => k.replace("_", "–")));
    chart("c-alerts", pie(d.ALERT_KIND || []));
  }

  async function lost(view) {
    const gen = routeGen;
    const [s, list] = await Promise.all([api("summary", { groupBy: "DIMENSION_LOST_DEAL_REASON" }), api("customers", { stage: "STAGE_LOST_PROSPECT", pageSize: 50 })]);
    if (stale(gen)) return;
    freshness(s.freshness);
    const reasons = dims(s).LOST_DEAL_REASON || [];
    view.innerHTML = `<h1>${t("lost.title")}</h1><div class="grid">
      <div class="card"><h2>${t("chart.lost")}</h2><div id="c-lost" class="chart"></div></div>
      <div class="card"><h2>${t("lost.list")}</h2>${customerTable(list.customers || [])}</div></div>`;
    chart("c-lost", pie(reasons));
    bindRows(view);
  }

  function customerTable(rows) {
    return `<table class="customers"><thead><tr>
      <th data-sort="customerId">${t("customer")}</th><th data-sort="stage">${t("stage")}</th>
      <th data-sort="pAlive">${t("p alive")}</th><th data-sort="loyalty">${t("loyalty")}</th>
      <th data-sort="grade">${t("grade")}</th><th data-sort="rfm">${t("rfm")}</th>
      <th data-sort="region">${t("region")}</th><th data-sort="last">${t("last activity")}</th></tr></thead><tbody>
      ${rows.map((c) => `<tr class="link" data-id="${esc(c.customerId)}" data-stage="${short(c.stage)}">
        <td>${esc(c.customerId)} ${esc(c.profile?.name || "")}</td><td><span class="stage ${short(c.stage)}">${word(c.stage)}</span></td>
        <td data-v="${c.pAlive}">${Number(c.pAlive).toFixed(2)}</td><td data-v="${c.loyalty?.total || 0}">${c.loyalty?.total || 0}</td>
        <td>${esc(short(c.grade) === "UNSPECIFIED" ? "" : short(c.grade))}</td><td>${esc(c.rfm?.score || "")} ${esc(c.rfm?.segment || "")}</td>
        <td>${esc(c.profile?.region || "")}</td><td>${day(c.activity?.lastActivity)}</td></tr>`).join("")}</tbody></table>`;
  }
  function bindRows(view) {
    view.querySelectorAll("tr.link").forEach((tr) => tr.addEventListener("click", () => (location.hash = "#/customer/" + encodeURIComponent(tr.dataset.id))));
    view.querySelectorAll("th[data-sort]").forEach((th, i) => th.addEventListener("click", () => {
      const body = th.closest("table").tBodies[0];
      const dir = th.dataset.dir === "asc" ? -1 : 1;
      th.dataset.dir = dir === 1 ? "asc" : "desc";
      const key = (tr) => { const td = tr.cells[i]; return td.dataset.v !== undefined ? Number(td.dataset.v) : td.textContent; };
      [...body.rows].sort((a, b) => (key(a) > key(b) ? dir : key(a) < key(b) ? -dir : 0)).forEach((r) => body.appendChild(r));
    }));
  }

  const listState = { tokens: [""], filters: {} };
  async function customers(view, params) {
    const f = Object.assign({ stage: "", grade: "", tier: "", region: "", minChurnRisk: "" }, params);
    const page = Number(f.page || 0);
    const opt = (name, values, prefix) => `<select name="${name}"><option value="">${t(name === "stage" ? "stage" : name)}: ${t("any")}</option>${values.map((v) => `<option value="${prefix}${v}" ${f[name] === prefix + v ? "selected" : ""}>${word(v)}</option>`).join("")}</select>`;
    const gen = routeGen;
    const list = await api("customers", { stage: f.stage, grade: f.grade, tier: f.tier, region: f.region, minChurnRisk: f.minChurnRisk, pageSize: 50, pageToken: listState.tokens[page] || "" });
    if (stale(gen)) return;
    freshness(list.freshness);
    listState.tokens[page + 1] = list.nextPageToken || "";
    view.innerHTML = `<h1>${t("customers.title")}</h1>
      <form class="filters" id="filters">
        ${opt("stage", STAGES, "STAGE_")}${opt("grade", ["A", "B", "C"], "VALUE_GRADE_")}${opt("tier", ["BRONZE", "SILVER", "GOLD", "PLATINUM"], "TIER_")}
        <input name="region" placeholder="${t("region")}" value="${esc(f.region)}" size="8">
        <input name="minChurnRisk" placeholder="${t("min churn risk")}" value="${esc(f.minChurnRisk)}" size="10">
        <button type="submit">${t("apply")}</button>
        <span class="muted">${t("page")} ${page + 1}</span>
        <button type="button" id="prev" ${page === 0 ? "disabled" : ""}>${t("prev")}</button>
        <button type="button" id="next" ${list.nextPageToken ? "" : "disabled"}>${t("next")}</button>
      </form>${customerTable(list.customers || [])}`;
    const go = (p) => { const q = new URLSearchParams(Object.assign({}, f, { page: p })); location.hash = "#/customers?" + q; };
    view.querySelector("#filters").addEventListener("submit", (e) => {
      e.preventDefault();
      listState.tokens = [""];
      const q = new URLSearchParams(new FormData(e.target));
      location.hash = "#/customers?" + q;
    });
    view.querySelector("#prev").addEventListener("click", () => go(page - 1));
    view.querySelector("#next").addEventListener("click", () => go(page + 1));
    bindRows(view);
  }

  async function customer(view, id) {
    const gen = routeGen;
    const [c, h] = await Promise.all([api("customers/" + encodeURIComponent(id)), api("customers/" + encodeURIComponent(id) + "/history")]);
    if (stale(gen)) return;
    freshness(c.freshness);
    const v = c.customer;
    const l = v.loyalty || {};
    view.innerHTML = `<h1>${esc(v.customerId)} ${esc(v.profile?.name || "")} <span class="stage ${short(v.stage)}" id="customer-stage" data-stage="${short(v.stage)}">${word(v.stage)}</span>
        <span class="muted">${t("since")} ${day(v.stageSince)}</span></h1>
      <div class="kpis">
        <div class="kpi"><div class="muted">${t("p alive")}</div><div class="v" id="p-alive">${Number(v.pAlive).toFixed(2)}</div></div>
        <div class="kpi"><div class="muted">${t("loyalty")}</div><div class="v">${l.total || 0}/10</div></div>
        <div class="kpi"><div class="muted">${t("grade")}</div><div class="v">${esc(short(v.grade) === "UNSPECIFIED" ? "–" : short(v.grade))}</div></div>
        <div class="kpi"><div class="muted">${t("rfm")}</div><div class="v">${esc(v.rfm?.score || "–")}</div><div class="muted">${esc(v.rfm?.segment || "")}</div></div>
        <div class="kpi"><div class="muted">${t("tier")}</div><div class="v">${word(v.points?.tier)}</div></div>
      </div>
      <div class="card"><b>${t("reasons")}:</b> ${(v.reasons || []).map(esc).join("; ")}<br><b>${t("action")}:</b> ${esc(v.suggestedAction || "")}</div><br>
      <div class="grid">
        <div class="card"><h2>${t("stage timeline")}</h2><div id="c-timeline" class="chart"></div></div>
        <div class="card"><h2>${t("p alive over time")}</h2><div id="c-palive" class="chart"></div></div>
        <div class="card"><h2>${t("loyalty parts")}</h2><div id="c-loyalty" class="chart"></div></div>
        <div class="card"><h2>${t("points and tier")}</h2><table>
          <tr><td>${t("balance")}</td><td>${Number(v.points?.balance || 0)}</td></tr>
          <tr><td>${t("qualifying")}</td><td>${Number(v.points?.qualifying12m || 0)}</td></tr>
          <tr><td>${t("tier")}</td><td>${word(v.points?.tier)}</td></tr>
          <tr><td>${t("keep tier")}</td><td>${Number(v.points?.pointsToKeepTier || 0)} ${day(v.points?.tierDropAt)}</td></tr></table></div>
      </div><br>
      <div class="grid">
        <div class="card"><h2>${t("tasks")}</h2><table><tr><th>${t("kind")}</th><th>${t("due")}</th><th>${t("status")}</th></tr>
          ${(v.followUps || []).map((x) => `<tr><td>${esc(short(x.kind))}</td><td>${day(x.dueAt)}</td><td>${word(x.status)}</td></tr>`).join("")}</table></div>
        <div class="card"><h2>${t("complaints")}</h2><table><tr><th>${t("category")}</th><th>${t("opened")}</th><th>${t("resolved")}</th></tr>
          ${(v.complaints || []).map((x) => `<tr><td>${esc(x.category)}</td><td>${day(x.openedAt)}</td><td>${day(x.resolvedAt)}</td></tr>`).join("")}</table></div>
        <div class="card"><h2>${t("alerts")}</h2><table><tr><th>${t("at")}</th><th>${t("kind")}</th><th>${t("reasons")}</th></tr>
          ${(h.alerts || []).map((a) => `<tr><td>${day(a.at)}</td><td class="sev-${a.severity}">${word(a.kind)}</td><td>${(a.reasons || []).map(esc).join("; ")}</td></tr>`).join("")}</table></div>
      </div>`;
    const tr = h.transitions || [];
    chart("c-timeline", {
      tooltip: { trigger: "axis" }, grid: { left: 100, right: 20 },
      xAxis: { type: "time" }, yAxis: { type: "category", data: STAGES.map(word) },
      series: [{ type: "line", step: "end", data: tr.filter((x) => short(x.to) !== "UNSPECIFIED").map((x) => [x.at, word(x.to)]).concat([[v.evaluatedAt || new Date().toISOString(), word(v.stage)]]) }],
    });
    // P(alive) over the last 24 months (GetHistory's series: weekly and on each activity day).
    const points = (h.pAlive || []).map((p) => [p.at, p.pAlive]);
    chart("c-palive", {
      tooltip: { trigger: "axis" }, xAxis: { type: "time" }, yAxis: { type: "value", min: 0, max: 1 },
      series: [{ type: "line", showSymbol: false, data: points, markLine: { symbol: "none", data: [{ yAxis: AT_RISK_P, name: t("at risk line"), label: { formatter: t("at risk line") } }, { yAxis: CHURNED_P, label: { formatter: t("churned line") } }] } }],
    });
    chart("c-loyalty", {
      tooltip: { trigger: "axis" }, xAxis: { type: "category", axisLabel: { interval: 0 }, data: ["satisfaction", "regular_maintenance", "event_participation", "advocacy"].map(t) },
      yAxis: { type: "value", max: 3 }, series: [{ type: "bar", data: [l.satisfaction || 0, l.regularMaintenance || 0, l.eventParticipation || 0, l.advocacy || 0] }],
    });
  }

  function alerts(view) {
    view.innerHTML = `<h1>${t("alerts.title")}</h1><p class="muted">${t("alerts.note")}</p><ul class="feed" id="feed"></ul>`;
    const feed = view.querySelector("#feed");
    // The newest 25 of each partition first, then live (a reconnect resumes by cursor).
    const q = "?recent=25" + (token() ? "&access_token=" + encodeURIComponent(token()) : "");
    stream = new EventSource("/api/v1/alerts/stream" + q);
    stream.addEventListener("alert", (e) => {
      const a = JSON.parse(e.data).alert;
      const li = document.createElement("li");
      li.dataset.alertId = a.alertId;
      li.innerHTML = `<span class="sev-${a.severity}">${word(a.kind)}</span> · <a href="#/customer/${encodeURIComponent(a.customerId)}">${esc(a.customerId)}</a> · ${day(a.at)} · ${(a.reasons || []).map(esc).join("; ")}<br><span class="muted">${esc(a.suggestedAction)}</span>`;
      feed.prepend(li);
      while (feed.children.length > 300) feed.lastChild.remove();
    });
    stream.addEventListener("error", () => {});  // EventSource reconnects with Last-Event-ID by itself
  }

  async function route() {
    const gen = ++routeGen;
    charts.splice(0).forEach((c) => c.dispose());
    if (stream) { stream.close(); stream = null; }
    const [path, query] = location.hash.replace(/^#/, "").split("?");
    const params = Object.fromEntries(new URLSearchParams(query || ""));
    document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === "#" + (path || "/")));
    const view = document.getElementById("view");
    try {
      if (path.startsWith("/customer/")) await customer(view, decodeURIComponent(path.slice(10)));
      else if (path === "/customers") await customers(view, params);
      else if (path === "/lost") await lost(view);
      else if (path === "/alerts") alerts(view);
      else await overview(view);
      if (!stale(gen)) view.dataset.loaded = path || "/";
    } catch (e) { if (!stale(gen)) showError(e); }
  }

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach((el) => (el.textContent = t(el.dataset.i18n)));
    document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => (el.placeholder = t(el.dataset.i18nPlaceholder)));
    document.getElementById("lang").textContent = lang === "zh" ? "English" : "中文";
  }
  document.getElementById("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("lifecycle.lang", lang);
    applyLanguage();
    route();
  });
  const tok = document.getElementById("token");
  tok.value = localStorage.getItem("lifecycle.token") || "";
  tok.addEventListener("change", () => { localStorage.setItem("lifecycle.token", tok.value.trim()); route(); });
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
  applyLanguage();
  route();
})();
