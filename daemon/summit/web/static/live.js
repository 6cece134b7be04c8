// cairn summit: keeps a server-rendered page current over server-sent events.
// Every page listens to /api/v1/stream (task changes, counts, builders); a task's page
// listens to its own log stream instead, which also carries that task's changes.
(function () {
  "use strict";
  var body = document.body;
  var status = document.getElementById("live-status");
  var taskId = body.dataset.task ? Number(body.dataset.task) : null;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function badge(state, id) {
    var b = el("span", { "class": "badge state-" + state }, state);
    if (id !== undefined && id !== null) b.setAttribute("data-task-state", id);
    return b;
  }
  function taskLink(id, source) {
    var a = el("a", { href: "/tasks/" + id }, (source || "task") + " ");
    a.appendChild(el("span", { "class": "id" }, "#" + id));
    return a;
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(epoch, full) {
    var d = new Date(epoch * 1000);
    var t = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    return full ? d.toLocaleDateString() + " " + t : t;
  }
  function localTimes(root) {
    root.querySelectorAll("time[data-epoch]").forEach(function (t) {
      var epoch = Number(t.dataset.epoch);
      if (epoch) {
        t.textContent = clock(epoch, t.dataset.full);
        t.setAttribute("datetime", new Date(epoch * 1000).toISOString());
      }
    });
  }
  function setLive(on) {
    if (!status) return;
    status.className = "live " + (on ? "on" : "off");
    status.title = on ? "live updates: connected" : "live updates: reconnecting";
  }

  function onCounts(counts) {
    refreshLimit();
    Object.keys(counts).forEach(function (state) {
      document.querySelectorAll('[data-count="' + state + '"]').forEach(function (n) {
        var value = String(counts[state]);
        if (n.textContent !== value) {
          n.textContent = value;
          var box = n.closest(".count");
          if (box) {
            box.classList.toggle("zero", counts[state] === 0);
            box.classList.remove("flash"); void box.offsetWidth; box.classList.add("flash");
          }
        }
      });
    });
  }

  function onBuilder(b) {
    var tbody = document.getElementById("builders");
    if (!tbody) return;
    var row = tbody.querySelector('tr[data-builder="' + CSS.escape(b.builder) + '"]');
    if (!row) {
      row = el("tr", { "data-builder": b.builder });
      tbody.appendChild(row);
      var none = document.getElementById("no-builders");
      if (none) none.hidden = true;
    }
    row.textContent = "";
    row.appendChild(el("td", { "class": "name" }, b.builder));
    var s = el("td"); s.appendChild(badge(b.state)); row.appendChild(s);
    var doing = el("td", { "class": "doing" });
    if (!b.tasks.length) doing.appendChild(el("span", { "class": "muted" }, "idle"));
    b.tasks.forEach(function (t, i) {
      if (i) doing.appendChild(document.createTextNode(", "));
      doing.appendChild(taskLink(t.id, t.source));
    });
    row.appendChild(doing);
    var slots = b.slots ? " · " + b.slots + " slot" + (b.slots === 1 ? "" : "s") : "";
    row.appendChild(el("td", { "class": "muted" }, (b.arch || "") + slots));
  }

  function renderBlockers(blockers) {
    var list = document.getElementById("blockers");
    if (!list) return;
    list.textContent = "";
    blockers.forEach(function (b) {
      var li = el("li"), span = el("span", { "class": "blocker kind-" + b.kind });
      b.parts.forEach(function (p) {
        span.appendChild(p.task === null ? document.createTextNode(p.text)
          : el("a", { href: "/tasks/" + p.task }, p.text));
      });
      li.appendChild(span);
      list.appendChild(li);
    });
    var none = document.getElementById("no-blockers");
    if (none) none.hidden = blockers.length > 0;
  }

  function onTask(data) {
    var t = data.task, entry = data.entry;
    document.querySelectorAll('[data-task-state="' + t.id + '"]').forEach(function (b) {
      b.textContent = t.state;
      b.className = "badge state-" + t.state;
    });
    var recent = document.getElementById("recent");
    if (recent && !recent.querySelector('li[data-seq="' + entry.seq + '"]')) addRecent(recent, t, entry);
    if (taskId !== t.id) return;
    var liveNote = document.getElementById("log-live");
    if (liveNote) liveNote.hidden = !(t.state === "ready" || t.state === "building");
    if (t.state !== "ready" && t.state !== "building") showLogUrls(t.id);
    var builder = document.getElementById("task-builder");
    if (builder) builder.textContent = t.builder || "-";
    var failure = document.getElementById("task-failure");
    if (failure) failure.textContent = t.failure || "-";
    renderBlockers(t.blockers || []);
    var timeline = document.getElementById("timeline");
    if (timeline && !timeline.querySelector('tr[data-seq="' + entry.seq + '"]')) {
      var tr = el("tr", { "data-seq": entry.seq });
      var c1 = el("td"); c1.appendChild(el("time", { "data-epoch": entry.time }, clock(entry.time)));
      var c2 = el("td"); c2.appendChild(badge(entry.type));
      var c4 = el("td", { "class": "muted small" }); c4.appendChild(el("code", {}, (entry.event_id || "-").slice(0, 8)));
      [c1, c2, el("td", {}, entry.summary), c4].forEach(function (c) { tr.appendChild(c); });
      timeline.appendChild(tr);
    }
  }

  // One event that moves many tasks to one state (a commit planned, a publication that
  // unblocks dependents) is one line with a count, as the server renders it.
  function addRecent(recent, t, entry) {
    var same = entry.event_id ? recent.querySelector('li[data-event="' + CSS.escape(entry.event_id)
      + '"][data-type="' + CSS.escape(entry.type) + '"]') : null;
    if (same) {
      var n = Number(same.dataset.n || 1) + 1, who = same.querySelector(".who");
      same.dataset.n = n;
      who.textContent = n + " tasks";
      var summary = same.querySelector(".summary");
      if (n === 2) summary.textContent = "";
      var names = summary.textContent ? summary.textContent.split(", ") : [];
      if (n === 2 && same.dataset.first) names = [same.dataset.first];
      if (names.length < 3) names.push(t.source); else if (names[names.length - 1] !== "…") names.push("…");
      summary.textContent = names.join(", ");
      return;
    }
    var li = el("li", { "data-seq": entry.seq, "data-type": entry.type, "data-n": 1,
                        "data-first": t.source || "", "class": "new" });
    if (entry.event_id) li.setAttribute("data-event", entry.event_id);
    li.appendChild(el("time", { "data-epoch": entry.time }, clock(entry.time)));
    var who = el("span", { "class": "who" });
    who.appendChild(taskLink(t.id, t.source));
    li.appendChild(who);
    li.appendChild(badge(entry.type));
    li.appendChild(el("span", { "class": "summary" }, (entry.summary || "").slice(0, 200)));
    recent.insertBefore(li, recent.firstChild);
    while (recent.children.length > 20) recent.removeChild(recent.lastChild);
  }

  // What limits progress is recomputed by the server; asked for at most every 2 s.
  var limitAsked = 0, limitTimer = null;
  function refreshLimit() {
    var line = document.getElementById("limit");
    if (!line || !window.fetch || limitTimer) return;
    limitTimer = setTimeout(function () {
      limitTimer = null;
      limitAsked = Date.now();
      fetch("/api/v1/overview").then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          line.textContent = data.limit.text;
          line.className = "limit limit-" + data.limit.kind;
          line.dataset.limit = data.limit.kind;
        }).catch(function () { /* the next change asks again */ });
    }, Math.max(0, 2000 - (Date.now() - limitAsked)));
  }

  function showLogUrls(id) {
    var holder = document.getElementById("log-urls");
    if (!holder || !window.fetch) return;
    fetch("/api/v1/tasks/" + id + "/log?after=1000000000000").then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (data) {
      if (!data || !data.log_urls.length) return;
      holder.textContent = "Full log, as the builder keeps it: ";
      data.log_urls.forEach(function (url, i) {
        if (i) holder.appendChild(document.createTextNode(", "));
        // Only http(s) links: a log URL is a builder's word (summit checks it too).
        holder.appendChild(/^https?:\/\/\S+$/i.test(url)
          ? el("a", { href: url }, "attempt " + (i + 1))
          : document.createTextNode("attempt " + (i + 1)));
      });
      holder.hidden = false;
    }).catch(function () { /* the link is a nicety */ });
  }

  function onLog(line) {
    var log = document.getElementById("log");
    if (!log || log.querySelector('[data-seq="' + line.seq + '"]')) return;
    var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    var span = el("span", { "class": "line new", "data-seq": line.seq }, line.text + "\n");
    log.appendChild(span);
    var empty = document.getElementById("log-empty");
    if (empty) empty.hidden = true;
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function parse(handler) {
    return function (message) {
      try { handler(JSON.parse(message.data)); } catch (err) { console.error(err); }
    };
  }

  localTimes(document);
  var log = document.getElementById("log");
  if (log) log.scrollTop = log.scrollHeight;
  if (!window.EventSource) return;
  var url = taskId === null ? "/api/v1/stream"
    : "/api/v1/tasks/" + taskId + "/log/stream?after=" + (body.dataset.logNext || 0);
  var source = new EventSource(url);
  source.onopen = function () { setLive(true); };
  source.onerror = function () { setLive(false); };
  source.addEventListener("counts", parse(onCounts));
  source.addEventListener("builder", parse(onBuilder));
  source.addEventListener("task", parse(onTask));
  source.addEventListener("log", parse(onLog));
  source.addEventListener("truncated", function () {
    var note = document.getElementById("log-truncated");
    if (note) note.hidden = false;
  });
})();
