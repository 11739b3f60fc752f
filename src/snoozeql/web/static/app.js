// SnoozeQL dashboard: a few lines on top of htmx. Dialogs (native <dialog>: modal,
// focus kept inside, Escape closes), confirmations, bulk selection, toasts, charts.
(function () {
  "use strict";
  function csrf() { return document.body.dataset.csrf || ""; }

  function toast(message, kind) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var div = document.createElement("div");
    div.className = "toast " + (kind || "error");
    div.setAttribute("role", "alert");
    div.setAttribute("data-testid", "toast");
    var span = document.createElement("span");
    span.textContent = message;
    var close = document.createElement("button");
    close.type = "button"; close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss"); close.textContent = "×";
    div.appendChild(span); div.appendChild(close); box.appendChild(div);
  }
  // For the page scripts (stacks.js, schedules.js): one toast for the whole dashboard.
  window.SnoozeQL = { toast: toast };

  // --- htmx: show error responses (the server sends a toast and retargets it) -------
  document.addEventListener("htmx:beforeSwap", function (e) {
    var xhr = e.detail.xhr;
    if (xhr.status >= 400) {
      if (xhr.getResponseHeader("HX-Retarget")) { e.detail.shouldSwap = true; e.detail.isError = false; }
      else { toast("Request failed (" + xhr.status + ")", "error"); }
    }
  });
  document.addEventListener("htmx:sendError", function () {
    toast("The server did not answer; check that snoozeql serve is running.", "error");
  });
  document.addEventListener("click", function (e) {
    var t = e.target;
    if (t.closest && t.closest(".toast-close")) { t.closest(".toast").remove(); }
    if (t.closest && t.closest(".dismiss-results")) { t.closest(".results").remove(); }
  });
  document.addEventListener("instance-changed", function () {
    // an action or override on the detail page: reload it to show the new state, and
    // show the outcome's toast again once reloaded
    window.setTimeout(function () {  // (the event comes before the toast is swapped in)
      var toasts = document.querySelectorAll("#toasts .toast.ok span");
      if (toasts.length) {
        try { window.sessionStorage.setItem("snoozeql.toast", toasts[toasts.length - 1].textContent); }
        catch (err) { /* storage disabled: the toast is just not repeated */ }
      }
      window.location.reload();
    }, 600);
  });
  document.addEventListener("DOMContentLoaded", function () {
    var kept = null;
    try { kept = window.sessionStorage.getItem("snoozeql.toast"); window.sessionStorage.removeItem("snoozeql.toast"); }
    catch (err) { kept = null; }
    if (kept) toast(kept, "ok");
  });

  // --- dialogs -----------------------------------------------------------------------
  function openDialog(dialog, opener) {
    dialog._opener = opener || document.activeElement;
    dialog.showModal();
    var first = dialog.querySelector("[autofocus], button.primary, button, input, a[href]");
    if (first) first.focus();
  }
  function closeDialog(dialog) {
    if (dialog.open) dialog.close();
  }
  // Tab and Shift+Tab wrap around inside an open modal dialog (a native modal lets
  // focus leave for the browser's own controls; keep it in the dialog instead).
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Tab") return;
    var d = document.querySelector("dialog[open]");
    if (!d) return;
    var items = Array.prototype.filter.call(
      d.querySelectorAll("a[href], button, input, select, textarea, [tabindex]"),
      function (el) {
        return !el.disabled && el.tabIndex >= 0 && el.offsetParent !== null;
      });
    if (!items.length) { e.preventDefault(); return; }
    var first = items[0], last = items[items.length - 1];
    var active = document.activeElement;
    if (!d.contains(active) || active === d) {
      e.preventDefault(); (e.shiftKey ? last : first).focus();
    } else if (e.shiftKey && active === first) {
      e.preventDefault(); last.focus();
    } else if (!e.shiftKey && active === last) {
      e.preventDefault(); first.focus();
    }
  });
  document.addEventListener("close", function (e) {
    var d = e.target;
    if (d.tagName === "DIALOG" && d._opener && d._opener.focus) d._opener.focus();
  }, true);
  document.addEventListener("click", function (e) {
    var cancel = e.target.closest && e.target.closest(".dialog-cancel");
    if (cancel) closeDialog(cancel.closest("dialog"));
  });

  // A form with data-confirm asks first, in an accessible modal dialog.
  var confirmDialog = null;
  function ensureConfirm() {
    if (confirmDialog) return confirmDialog;
    confirmDialog = document.createElement("dialog");
    confirmDialog.id = "confirm-dialog";
    confirmDialog.setAttribute("aria-labelledby", "confirm-title");
    confirmDialog.innerHTML = '<h2 id="confirm-title"></h2><div class="dialog-actions">' +
      '<button type="button" class="dialog-cancel">Cancel</button> ' +
      '<button type="button" class="primary danger" data-testid="confirm">Confirm</button></div>';
    document.body.appendChild(confirmDialog);
    return confirmDialog;
  }
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.dataset || !form.dataset.confirm || form._confirmed) { if (form) form._confirmed = false; return; }
    e.preventDefault(); e.stopPropagation();
    var d = ensureConfirm();
    d.querySelector("#confirm-title").textContent = form.dataset.confirm;
    var ok = d.querySelector("[data-testid=confirm]");
    ok.onclick = function () { closeDialog(d); form._confirmed = true; form.requestSubmit(); };
    openDialog(d, e.submitter || document.activeElement);
  }, true);

  // --- bulk selection on the instances table -----------------------------------------
  function bulkState() {
    var form = document.getElementById("bulk-form");
    if (!form) return;
    var all = document.getElementById("select-all-matching");
    var allOn = all && all.checked;
    var n = allOn ? parseInt(form.dataset.matching, 10) :
      form.querySelectorAll(".row-check:checked").length;
    var label = document.getElementById("selected-count");
    if (label) label.textContent = n + " selected" + (allOn ? " (all matching)" : "");
    document.getElementById("all-matching").value = allOn ? "1" : "0";
    form.querySelectorAll("[data-bulk-action]").forEach(function (b) { b.disabled = n === 0; });
  }
  document.addEventListener("change", function (e) {
    var t = e.target;
    var form = document.getElementById("bulk-form");
    if (!form || !form.contains(t)) return;
    if (t.id === "select-page") {
      form.querySelectorAll(".row-check").forEach(function (c) { c.checked = t.checked; });
    } else if (t.id === "select-all-matching") {
      form.querySelectorAll(".row-check").forEach(function (c) { c.checked = t.checked; });
      var sp = document.getElementById("select-page"); if (sp) sp.checked = t.checked;
    } else if (t.classList.contains("row-check") && !t.checked) {
      var am = document.getElementById("select-all-matching"); if (am) am.checked = false;
    }
    bulkState();
  });
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("[data-bulk-action]");
    if (!b) return;
    var form = document.getElementById("bulk-form");
    var data = new FormData(form);
    data.set("action", b.dataset.bulkAction);
    fetch("/instances/bulk/preview", {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf(), "HX-Request": "true" }
    }).then(function (r) {
      return r.text().then(function (html) { return { ok: r.ok, html: html }; });
    }).then(function (res) {
      if (!res.ok) {
        var tmp = document.createElement("div"); tmp.innerHTML = res.html;
        toast(tmp.textContent.replace("×", "").trim() || "Could not prepare the action", "error");
        return;
      }
      var d = document.getElementById("bulk-dialog");
      var body = document.getElementById("bulk-dialog-body");
      body.innerHTML = res.html;
      if (window.htmx) window.htmx.process(body);
      openDialog(d, b);
    }).catch(function () { toast("The server did not answer.", "error"); });
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    var d = document.getElementById("bulk-dialog");
    if (d && d.open && d.contains(e.detail.elt)) closeDialog(d);
  });
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail.target && e.detail.target.id === "bulk-results" && window.htmx) {
      window.htmx.ajax("GET", window.location.pathname + window.location.search,
        { target: "#table-region", swap: "innerHTML" });
    }
    bulkState();
  });

  // --- copy a connection URL (fetched on demand: it holds a password) -----------------
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("[data-url-from]");
    if (!b) return;
    fetch(b.dataset.urlFrom, { credentials: "same-origin" }).then(function (r) {
      return r.text().then(function (t) { return { ok: r.ok, text: t }; });
    }).then(function (res) {
      if (!res.ok) { toast("Could not read the URL", "error"); return; }
      var done = function () { toast("Connection URL copied", "ok"); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(res.text).then(done, function () { window.prompt("Connection URL", res.text); });
      } else { window.prompt("Connection URL", res.text); }
    });
  });

  // --- charts (uPlot, vendored) -----------------------------------------------------
  function drawCharts() {
    var src = document.getElementById("chart-data");
    if (!src || !window.uPlot) return;
    var data = JSON.parse(src.textContent);
    document.querySelectorAll("figure.chart").forEach(function (fig) {
      var s = data.series[fig.dataset.metric];
      var box = fig.querySelector(".chart-canvas");
      if (!s || !s.t.length) { box.textContent = "no data"; return; }
      var width = Math.max(280, Math.min(box.clientWidth || 520, 640));
      new window.uPlot({
        width: width, height: 180, legend: { show: true },
        series: [{}, { label: "min", stroke: "#1a7f37" }, { label: "avg", stroke: "#0b5cad", width: 2 },
          { label: "max", stroke: "#b42318" }],
        axes: [{}, {}]
      }, [s.t, s.min, s.avg, s.max], box);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { drawCharts(); bulkState(); });

  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") {
      var t = document.querySelector(".toast"); if (t && !document.querySelector("dialog[open]")) t.remove();
    }
  });
})();
