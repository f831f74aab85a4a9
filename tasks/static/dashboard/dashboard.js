/* The dashboard's small amount of JavaScript: live updates, counts, the chart, follow a job. */
"use strict";
const Dashboard = (() => {
  const getJSON = (url) => fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`${url}: ${r.status}`))));

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    let s = Math.floor(seconds);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    const two = (n) => String(n).padStart(2, "0");
    if (d) return `${d}d ${two(h)}h`;
    if (h) return `${h}h ${two(m)}m`;
    if (m) return `${m}m ${two(s)}s`;
    return `${s}s`;
  }

  /* Server-sent job events (tasks/operate/dashboard/stream.py). ``onEvent`` gets each job
     event; ``onOpen`` runs on every (re)connection and on ``resync``, so the page reads its
     figures afresh whenever it may have missed an event. ``#live`` says which mode is on. */
  function live(url, onEvent, onOpen) {
    const badge = document.getElementById("live");
    const state = {on: false};
    if (!url || typeof EventSource === "undefined") return state;
    const source = new EventSource(url, {withCredentials: true});
    const show = (on) => {
      state.on = on;
      if (badge) { badge.textContent = on ? "live" : "polling"; badge.dataset.live = String(on); }
    };
    source.addEventListener("hello", () => { show(true); onOpen(); });
    source.addEventListener("resync", () => onOpen());
    source.addEventListener("job", (e) => onEvent(JSON.parse(e.data)));
    source.onerror = () => show(false);  // EventSource retries by itself
    return state;
  }

  /* Run ``fn`` at most once per ``ms`` however many events ask for it. */
  function throttled(fn, ms) {
    let timer = null;
    return () => { if (timer === null) timer = setTimeout(() => { timer = null; fn(); }, ms); };
  }

  function overview(pollMs = 5000, livePollMs = 60000) {
    const table = document.getElementById("overview");
    if (!table) return;
    const refresh = () => getJSON(table.dataset.countsUrl).then((data) => {
      for (const q of data.queues) {
        for (const [state, count] of Object.entries(q.counts)) {
          const cell = table.querySelector(`[data-count="${q.name}:${state}"]`);
          if (cell && cell.textContent !== count.text) cell.textContent = count.text;
        }
        const oldest = table.querySelector(`[data-oldest="${q.name}"]`);
        if (oldest) oldest.textContent = duration(q.oldest_waiting_age_s);
        const consumers = table.querySelector(`[data-consumers="${q.name}"]`);
        if (consumers) consumers.textContent = q.consumers.length ? q.consumers.join(", ") : "none";
        const missing = table.querySelector(`[data-missing="${q.name}"]`);
        if (missing) missing.textContent = q.missing_consumers.length ? `missing: ${q.missing_consumers.join(", ")}` : "";
        const paused = table.querySelector(`[data-paused="${q.name}"]`);
        if (paused) {
          paused.textContent = q.paused ? "paused" : "running";
          paused.className = `badge ${q.paused ? "paused" : "running"}`;
        }
      }
      const at = document.getElementById("refreshed-at");
      if (at) at.textContent = new Date(data.at).toLocaleTimeString();
    }).catch((err) => console.warn("count refresh failed", err));
    const soon = throttled(refresh, 250);
    const stream = live(table.dataset.eventsUrl, soon, soon);
    // Polling is the fallback: slow while the live stream is connected.
    let last = Date.now();
    setInterval(() => {
      if (Date.now() - last >= (stream.on ? livePollMs : pollMs)) { last = Date.now(); refresh(); }
    }, 1000);
    refresh();
  }

  function chart(canvas) {
    if (!canvas || typeof Chart === "undefined") return;
    let window_ = "1h";
    let drawn = null;
    const draw = () => {
      const url = `${canvas.dataset.chartUrl}?window=${window_}`;
      getJSON(url).then((s) => {
        const labels = s.minutes.map((m) => {
          const d = new Date(m);
          if (s.step_s >= 86400) return d.toLocaleDateString([], {month: "short", day: "numeric"});
          return window_ === "1h" ? d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})
            : d.toLocaleString([], {weekday: "short", hour: "2-digit", minute: "2-digit"});
        });
        const per = s.step_s >= 86400 ? "day" : s.step_s >= 3600 ? "hour" : "min";
        const datasets = [
          {label: `completed / ${per}`, data: s.completed, borderColor: "#2f855a", backgroundColor: "rgba(47,133,90,.15)", fill: true, pointRadius: 0, tension: 0.2},
          {label: `failed / ${per}`, data: s.failed, borderColor: "#c53030", backgroundColor: "rgba(197,48,48,.15)", fill: true, pointRadius: 0, tension: 0.2},
        ];
        if (drawn) { drawn.data.labels = labels; drawn.data.datasets = datasets; drawn.update("none"); return; }
        drawn = new Chart(canvas, {type: "line", data: {labels, datasets},
          options: {animation: false, maintainAspectRatio: false, interaction: {mode: "index", intersect: false},
            scales: {y: {beginAtZero: true, ticks: {precision: 0}}, x: {ticks: {maxTicksLimit: 12}}}}});
      }).catch((err) => console.warn("chart refresh failed", err));
    };
    document.querySelectorAll("[data-window]").forEach((button) => button.addEventListener("click", () => {
      window_ = button.dataset.window;
      document.querySelectorAll("[data-window]").forEach((b) => b.classList.toggle("on", b === button));
      draw();
    }));
    setInterval(draw, 30000);
    draw();
  }

  function jobPage(badge, pollMs = 1000) {
    if (!badge) return;
    const initial = badge.dataset.state;
    const show = (s) => {
      // A new state brings a new history, result or error: show the whole page afresh.
      if (s.state !== initial) { window.location.reload(); return; }
      const progress = document.querySelector("#job-progress progress");
      if (progress && typeof s.progress === "number") progress.value = s.progress;
    };
    const follow = () => getJSON(badge.dataset.statusUrl).then(show).catch(() => {});
    // Live while connected (a finished job too: retried elsewhere, it comes back to life);
    // polled only while the stream is down, and only until the job has finished.
    const stream = live(badge.dataset.eventsUrl, show, follow);
    if (badge.dataset.finished === "true") return;
    setInterval(() => { if (!stream.on) follow(); }, pollMs);
  }

  return {overview, chart, jobPage, duration, live};
})();
