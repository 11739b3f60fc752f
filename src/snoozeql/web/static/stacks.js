// SnoozeQL dashboard, stacks pages: catalogue search, override rows, secret reveal,
// apply/down progress (streamed), copy of the Compose file. Everything works without
// it too (plain forms and links); this only makes it nicer.
(function () {
  "use strict";
  function csrf() { return document.body.dataset.csrf || ""; }
  // Toasts are app.js's (loaded on every page; called only from handlers, after it ran).
  function say(message, kind) { window.SnoozeQL.toast(message, kind); }

  // --- template catalogue: filter the cards as one types -------------------------
  document.addEventListener("input", function (e) {
    var t = e.target;
    if (!t.dataset || !t.dataset.filter) return;
    var needle = t.value.trim().toLowerCase();
    var shown = 0;
    document.querySelectorAll(t.dataset.filter).forEach(function (li) {
      var hit = !needle || (li.dataset.text || "").toLowerCase().indexOf(needle) >= 0;
      li.hidden = !hit;
      if (hit) shown++;
    });
    var none = document.getElementById("tpl-none");
    if (none) none.hidden = shown > 0;
  });

  // --- override rows: add and remove --------------------------------------------
  var nextRow = null;
  document.addEventListener("click", function (e) {
    var add = e.target.closest && e.target.closest("#add-row");
    if (add) {
      var tpl = document.getElementById("row-template");
      var body = document.getElementById("rows");
      if (!tpl || !body) return;
      if (nextRow === null) {
        nextRow = 0;
        body.querySelectorAll("tr[data-row]").forEach(function (r) {
          nextRow = Math.max(nextRow, parseInt(r.dataset.row, 10) + 1);
        });
      }
      var html = tpl.innerHTML.split("__N__").join(String(nextRow))
        .split("__R__").join(String(nextRow + 1));
      nextRow++;
      body.insertAdjacentHTML("beforeend", html);
      var none = document.getElementById("no-rows"); if (none) none.hidden = true;
      var rows = body.querySelectorAll("tr.sk-row");
      var first = rows[rows.length - 1].querySelector("input, select, textarea");
      if (first) first.focus();
      return;
    }
    var rm = e.target.closest && e.target.closest(".sk-remove-row");
    if (rm) {
      var tr = rm.closest("tr");
      var err = tr.nextElementSibling;
      if (err && err.classList.contains("sk-row-error")) err.remove();
      tr.remove();
      var addBtn = document.getElementById("add-row"); if (addBtn) addBtn.focus();
      return;
    }
    var confirmBtn = e.target.closest && e.target.closest("[data-confirm-click]");
    if (confirmBtn && !window.confirm(confirmBtn.dataset.confirmClick)) { e.preventDefault(); }
  });

  // --- secrets: fetched on demand (operators), never in the page's HTML -----------
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest(".sk-reveal");
    if (!b) return;
    var input = document.getElementById(b.getAttribute("aria-controls"));
    var label = b.firstChild;
    if (input.type === "text") {  // hide it again
      input.type = "password"; label.textContent = "Reveal"; return;
    }
    var form = document.getElementById("override-form");
    var url = "/stacks/" + encodeURIComponent(form.dataset.stack) + "/instances/" +
      encodeURIComponent(form.dataset.instance) + "/secret?key=" + encodeURIComponent(b.dataset.key);
    fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } }).then(function (r) {
      return r.text().then(function (t) { return { ok: r.ok, text: t }; });
    }).then(function (res) {
      if (!res.ok) {
        var tmp = document.createElement("div"); tmp.innerHTML = res.text;
        say(tmp.textContent.replace("×", "").trim() || "Could not read the secret", "error");
        return;
      }
      if (!input.value) input.value = res.text;
      input.type = "text"; label.textContent = "Hide";
    }).catch(function () { say("The server did not answer.", "error"); });
  });

  // --- apply / down: the steps as they happen ------------------------------------
  function cellText(tr, i, text) { tr.children[i].textContent = text; }
  function outcomeChip(step) {
    var span = document.createElement("span");
    var word = step.ok ? "ok" : (step.action === "refused" ? "refused" : "failed");
    span.className = "chip " + (step.ok ? "res-ok" : "res-failed");
    span.textContent = word;
    return span;
  }
  function refreshPage() {
    fetch(window.location.pathname, { credentials: "same-origin" }).then(function (r) {
      return r.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      ["#instances-table", "#plan-region", "h1"].forEach(function (sel) {
        var now = document.querySelector(sel), fresh = doc.querySelector(sel);
        if (now && fresh) now.replaceWith(fresh);
      });
    });
  }
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.dataset || !form.dataset.stream || e.defaultPrevented || !window.fetch) return;
    e.preventDefault();
    var region = document.getElementById("run-region");
    var status = document.getElementById("run-status");
    var body = document.querySelector("#run-table tbody");
    var buttons = document.querySelectorAll("[data-stream] button");
    region.hidden = false;
    body.innerHTML = "";
    status.textContent = (form.dataset.stream === "apply" ? "Applying" : "Taking down") + "…";
    region.setAttribute("aria-busy", "true");
    buttons.forEach(function (b) { b.disabled = true; });
    var rows = {};
    var total = 0, done = 0;
    function handle(ev) {
      var d = ev.data;
      if (ev.event === "plan") {
        total = d.length;
        if (!total) status.textContent = "Nothing to do: everything is as it should be.";
        d.forEach(function (item) {
          var tr = document.createElement("tr");
          tr.dataset.instance = item.instance;
          for (var i = 0; i < 4; i++) tr.appendChild(document.createElement("td"));
          cellText(tr, 0, item.action); cellText(tr, 1, item.instance);
          cellText(tr, 2, "waiting"); cellText(tr, 3, item.reason || "");
          body.appendChild(tr); rows[item.runtime_name] = tr;
        });
      } else if (ev.event === "begin") {
        var tr = rows[d.runtime_name];
        if (tr) { cellText(tr, 2, "working…"); tr.setAttribute("aria-busy", "true"); }
        status.textContent = "Step " + (done + 1) + " of " + total + ": " + d.action + " " + d.instance + "…";
      } else if (ev.event === "end") {
        done++;
        var row = rows[d.runtime_name];
        if (row) {
          row.removeAttribute("aria-busy");
          row.children[2].textContent = ""; row.children[2].appendChild(outcomeChip(d));
          cellText(row, 3, [d.status, d.detail].filter(Boolean).join(": "));
          row.dataset.outcome = d.ok ? "ok" : "failed";
        }
      } else if (ev.event === "done") {
        status.textContent = total ? (d.ok ? "Done: every step succeeded." :
          "Done, with failures: see the rows marked failed or refused.") : status.textContent;
        region.dataset.done = d.ok ? "ok" : "failed";
      } else if (ev.event === "error") {
        status.textContent = d.message;
        region.dataset.done = "error";
      }
    }
    fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "Accept": "application/x-ndjson", "X-CSRF-Token": csrf(), "HX-Request": "true" }
    }).then(function (r) {
      if (!r.ok || !r.body) {
        return r.text().then(function (html) {
          var tmp = document.createElement("div"); tmp.innerHTML = html;
          status.textContent = tmp.textContent.replace("×", "").trim() || ("Request failed (" + r.status + ")");
          region.dataset.done = "error";
        });
      }
      var reader = r.body.getReader(), decoder = new TextDecoder(), buf = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) return;
          buf += decoder.decode(chunk.value, { stream: true });
          var lines = buf.split("\n"); buf = lines.pop();
          lines.forEach(function (line) { if (line.trim()) handle(JSON.parse(line)); });
          return pump();
        });
      }
      return pump();
    }).catch(function () {
      status.textContent = "The server did not answer; check that snoozeql serve is running.";
      region.dataset.done = "error";
    }).then(function () {
      region.removeAttribute("aria-busy");
      buttons.forEach(function (b) { b.disabled = false; });
      refreshPage();
    });
  });

  // --- copy the Compose file ------------------------------------------------------
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("[data-copy]");
    if (!b) return;
    var text = document.querySelector(b.dataset.copy).textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { say("Copied", "ok"); });
    } else {
      var range = document.createRange();
      range.selectNodeContents(document.querySelector(b.dataset.copy));
      var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
      say("Selected: press Ctrl+C to copy", "ok");
    }
  });
})();
