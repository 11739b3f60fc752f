// SnoozeQL dashboard, part 2: the schedule editor (weekly grid, periods text, cron
// pair, live checks), the selector builder with its live preview, the recommendation
// dialogs and the savings chart. Every check runs on the server (the same code that
// saves); this file only draws and sends.
(function () {
  "use strict";
  function csrf() { return document.body.dataset.csrf || ""; }
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") e.className = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function debounce(fn, ms) {
    var t = null;
    return function () { var args = arguments; clearTimeout(t); t = setTimeout(function () { fn.apply(null, args); }, ms); };
  }
  // POST JSON to one of the page's endpoints; the newest answer wins (older ones that
  // arrive late are ignored).
  function poster(url) {
    var seq = 0;
    return function (body, done) {
      var mine = ++seq;
      fetch(url, {
        method: "POST", credentials: "same-origin", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() }
      }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (data) { if (mine === seq) done(data); })
        .catch(function () { if (mine === seq) done({ ok: false, error: { message: "The server did not answer the check; is snoozeql serve running?" } }); });
    };
  }

  // ---------------------------------------------------------------- schedule editor
  function editor(form) {
    var gridInput = $("#f-grid", form);
    var table = $("#week-grid", form);
    var cells = $all("td.cell", table);
    var text = $("#f-periods", form);
    var startCron = $("#f-start-cron", form), stopCron = $("#f-stop-cron", form);
    var check = poster("/schedules/check");
    var gridOk = !$("#grid-reason", form) || $("#grid-reason", form).hidden;
    var painting = null;

    function mode() { var m = $("input[name=mode]:checked", form); return m ? m.value : "text"; }
    function showMode() {
      var m = mode();
      $all(".mode-panel", form).forEach(function (p) { p.hidden = p.dataset.mode !== m; });
    }
    function cell(d, h) { return cells[d * 24 + h]; }
    function setCell(c, on) {
      c.classList.toggle("on", on);
      c.setAttribute("aria-selected", on ? "true" : "false");
    }
    function gridValue() { return cells.map(function (c) { return c.classList.contains("on") ? "1" : "0"; }).join(""); }
    function loadGrid(value) { cells.forEach(function (c, i) { setCell(c, value.charAt(i) === "1"); }); gridInput.value = value; }

    function payload(m) {
      return {
        mode: m || mode(), timezone: $("#f-tz", form).value, grid: gridValue(),
        periods_text: text.value, start_cron: startCron.value, stop_cron: stopCron.value,
        override_status: $("#f-force", form).value
      };
    }
    function showError(box, err) {
      box.textContent = "";
      if (!err) return;
      var p = el("p", { "class": "alert error", role: "alert" });
      p.textContent = (err.line ? "Line " + err.line + ", column " + err.column + ": " : "") + err.message;
      box.appendChild(p);
      if (err.line && box.id === "periods-error") {
        // the line with a caret under the error's column
        var line = text.value.split("\n")[err.line - 1] || "";
        var pre = el("pre", { "class": "caret", "aria-hidden": "true" });
        pre.textContent = line + "\n" + new Array(err.column).join(" ") + "^";
        box.appendChild(pre);
      }
    }
    function render(data) {
      var list = $("#transitions", form);
      var periodsBox = $("#periods-error", form), cronBox = $("#cron-error", form);
      showError(periodsBox, null); showError(cronBox, null);
      list.textContent = "";
      if (data.periods_text !== undefined && data.mode === "grid" && document.activeElement !== text) {
        text.value = data.periods_text;
      }
      if (data.grid !== undefined) {
        var reason = $("#grid-reason", form);
        if (data.grid === null) {
          gridOk = false;
          reason.hidden = false;
          reason.firstChild.textContent = "These periods cannot be drawn on the grid: " + data.grid_reason + ". Edit them as text, or ";
        } else {
          gridOk = true; reason.hidden = true;
          if (data.mode !== "grid" && painting === null) loadGrid(data.grid);
        }
      }
      if (!data.ok) {
        var err = data.error || { message: "invalid" };
        var f = data.field || "";
        if (f === "periods_text") showError(periodsBox, err);
        else if (f.indexOf("cron") >= 0 || mode() === "cron") showError(cronBox, err);
        else if (f === "grid" && mode() === "grid") { list.appendChild(el("li", { "class": "field-error" }, err.message)); return; }
        else showError(mode() === "text" ? periodsBox : cronBox, err);
        list.appendChild(el("li", { "class": "muted" }, "fix the error to see the transitions"));
        return;
      }
      (data.transitions || []).forEach(function (t) {
        var li = el("li");
        li.appendChild(document.createTextNode(t.local + ": "));
        li.appendChild(el("strong", null, t.state));
        li.appendChild(el("span", { "class": "muted" }, " (" + t.reason + ")"));
        list.appendChild(li);
      });
      if (!list.children.length) list.appendChild(el("li", { "class": "muted" }, "no transition within 400 days"));
    }
    var pending = null;
    function run() {
      clearTimeout(pending);
      pending = setTimeout(function () { pending = null; check(payload(), render); }, 300);
    }

    // mode switches: what was edited in the mode left is converted at once (the text
    // from the grid, the grid from the text), so both always show the same schedule
    var lastMode = mode();
    $all("input[name=mode]", form).forEach(function (r) {
      r.addEventListener("change", function () {
        var left = lastMode;
        lastMode = mode();
        clearTimeout(pending); pending = null;
        if (mode() === "grid" && !gridOk) $("#grid-reason", form).hidden = false;
        showMode();
        if (left !== "cron" && mode() !== "cron") check(payload(left), render);
        run();
      });
    });
    [text, startCron, stopCron, $("#f-tz", form), $("#f-force", form)].forEach(function (i) {
      i.addEventListener("input", run);
      i.addEventListener("change", run);
    });

    // painting: the first cell decides the paint (the opposite of its state)
    // a drag paints the rectangle from the first cell to the one under the pointer
    var anchor = null, before = null;
    function paintTo(c) {
      if (painting === null || !c) return;
      var d0 = Math.min(anchor[0], +c.dataset.d), d1 = Math.max(anchor[0], +c.dataset.d);
      var h0 = Math.min(anchor[1], +c.dataset.h), h1 = Math.max(anchor[1], +c.dataset.h);
      cells.forEach(function (x, i) {
        var d = +x.dataset.d, h = +x.dataset.h;
        var inside = d >= d0 && d <= d1 && h >= h0 && h <= h1;
        setCell(x, inside ? painting : before.charAt(i) === "1");
      });
      gridInput.value = gridValue();
    }
    table.addEventListener("mousedown", function (e) {
      var c = e.target.closest("td.cell"); if (!c) return;
      e.preventDefault();
      painting = !c.classList.contains("on");
      anchor = [+c.dataset.d, +c.dataset.h]; before = gridValue();
      focusCell(c); paintTo(c);
    });
    table.addEventListener("mouseover", function (e) {
      if (painting === null) return;
      paintTo(e.target.closest("td.cell"));
    });
    document.addEventListener("mouseup", function () {
      if (painting !== null) { painting = null; gridOk = true; $("#grid-reason", form).hidden = true; run(); }
    });
    function focusCell(c) {
      cells.forEach(function (x) { x.tabIndex = -1; });
      c.tabIndex = 0; c.focus();
    }
    table.addEventListener("keydown", function (e) {
      var c = e.target.closest("td.cell"); if (!c) return;
      var d = +c.dataset.d, h = +c.dataset.h;
      var moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
      if (moves[e.key]) {
        e.preventDefault();
        var nd = Math.min(6, Math.max(0, d + moves[e.key][0]));
        var nh = Math.min(23, Math.max(0, h + moves[e.key][1]));
        var next = cell(nd, nh);
        if (e.shiftKey) { setCell(next, c.classList.contains("on")); gridInput.value = gridValue(); run(); }
        focusCell(next);
      } else if (e.key === "Home" || e.key === "End") {
        e.preventDefault(); focusCell(cell(d, e.key === "Home" ? 0 : 23));
      } else if (e.key === " " || e.key === "Enter") {
        e.preventDefault();
        setCell(c, !c.classList.contains("on")); gridInput.value = gridValue();
        gridOk = true; $("#grid-reason", form).hidden = true; run();
      }
    });
    $all("[data-fill]", form).forEach(function (b) {
      b.addEventListener("click", function () {
        var how = b.dataset.fill;
        cells.forEach(function (c) {
          var d = +c.dataset.d, h = +c.dataset.h;
          setCell(c, how === "all" || (how === "office" && d < 5 && h >= 8 && h < 19));
        });
        gridInput.value = gridValue(); gridOk = true; $("#grid-reason", form).hidden = true; run();
      });
    });
    var reset = $("#grid-reset", form);
    if (reset) reset.addEventListener("click", function () {
      loadGrid(new Array(169).join("0")); gridOk = true;
      $("#grid-reason", form).hidden = true;
      var g = $("input[name=mode][value=grid]", form); g.checked = true; showMode(); run();
    });
    form.addEventListener("submit", function (e) {
      gridInput.value = gridValue();
      if (mode() === "grid" && !gridOk) {
        e.preventDefault();
        $("#grid-reason", form).hidden = false;
        $("#grid-reason", form).focus();
      }
      var sel = $("#f-selector", form);
      if (sel && form._selector) sel.value = form._selector();
    });
    showMode(); run();
  }

  // ---------------------------------------------------------------- selector builder
  var FIELDS = [["name", "Name matches (regex)"], ["tag", "Tag"], ["provider", "Provider is"],
    ["account", "Account is"], ["region", "Region is"], ["engine", "Engine is"]];
  var uid = 0;
  function builder(root, hidden, previewBox) {
    var preview = poster("/schedules/selector-preview");
    var tree = { op: "all", items: [] };
    try {
      if (hidden.value) tree = fromJson(JSON.parse(hidden.value));
    } catch (err) { tree = { op: "all", items: [] }; }

    function fromJson(j) {
      if (j.all || j.any) {
        return { op: j.all ? "all" : "any", items: (j.all || j.any).map(fromJson) };
      }
      var k = Object.keys(j)[0], v = j[k];
      if (k === "tag") return { field: "tag", key: v.key || "", value: v.value || "" };
      return { field: k, value: Array.isArray(v) ? v.join(",") : v };
    }
    function toJson(node) {
      if (node.op) {
        var items = node.items.map(toJson).filter(function (x) { return x !== null; });
        if (!items.length) return null;
        var o = {}; o[node.op] = items; return o;
      }
      if (node.field === "tag") {
        if (!node.key) return { tag: { key: "", value: node.value } };
        return node.value === "" ? { tag: { key: node.key, exists: true } } : { tag: { key: node.key, value: node.value } };
      }
      var o2 = {};
      if (node.field === "name") o2.name = node.value;
      else {
        var parts = node.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
        o2[node.field] = parts.length === 1 ? parts[0] : parts;
      }
      return o2;
    }
    // the JSON path of each condition as the server names it (all[1].name)
    function draw() {
      root.textContent = "";
      root.appendChild(group(tree, "", true));
    }
    function group(node, path, isRoot) {
      var fs = el("fieldset", { "class": "sel-group" });
      var id = "sel-op-" + (++uid);
      var lg = el("legend");
      var lab = el("label", { "for": id, "class": "inline" }, isRoot ? "Instances matching" : "Group:");
      var sel = el("select", { id: id });
      [["all", "all of (AND)"], ["any", "any of (OR)"]].forEach(function (o) {
        var opt = el("option", { value: o[0] }, o[1]); if (node.op === o[0]) opt.selected = true; sel.appendChild(opt);
      });
      sel.addEventListener("change", function () { node.op = sel.value; draw(); changed(); });
      lab.appendChild(sel); lg.appendChild(lab); fs.appendChild(lg);
      var kept = 0;
      node.items.forEach(function (item, i) {
        var p = (path ? path + "." : "") + node.op + "[" + i + "]";
        var row = item.op ? group(item, p, false) : condition(item, p);
        var rm = el("button", { type: "button", "class": "link sel-remove" }, "remove");
        rm.setAttribute("aria-label", "Remove " + (item.op ? "group" : "condition") + " " + (i + 1));
        rm.addEventListener("click", function () { node.items.splice(i, 1); draw(); changed(); });
        var wrap = el("div", { "class": "sel-item" });
        wrap.appendChild(row); wrap.appendChild(rm); fs.appendChild(wrap);
        kept++;
      });
      var actions = el("div", { "class": "row-actions" });
      var addC = el("button", { type: "button", "data-testid": "sel-add" }, "Add condition");
      addC.addEventListener("click", function () { node.items.push({ field: "name", value: "" }); draw(); changed(); focusLast(fs); });
      var addG = el("button", { type: "button", "data-testid": "sel-add-group" }, "Add group");
      addG.addEventListener("click", function () { node.items.push({ op: node.op === "all" ? "any" : "all", items: [{ field: "name", value: "" }] }); draw(); changed(); });
      actions.appendChild(addC); actions.appendChild(addG); fs.appendChild(actions);
      return fs;
    }
    function focusLast(fs) {
      var inputs = $all(".sel-cond select", root);
      if (inputs.length) inputs[inputs.length - 1].focus();
    }
    function condition(node, path) {
      var box = el("div", { "class": "sel-cond", "data-path": path });
      var fid = "sel-f-" + (++uid);
      var fl = el("label", { "for": fid, "class": "sr-only" }, "Condition");
      var fsel = el("select", { id: fid, "data-testid": "sel-field" });
      FIELDS.forEach(function (f) { var o = el("option", { value: f[0] }, f[1]); if (node.field === f[0]) o.selected = true; fsel.appendChild(o); });
      fsel.addEventListener("change", function () { node.field = fsel.value; node.key = ""; draw(); changed(); });
      box.appendChild(fl); box.appendChild(fsel);
      if (node.field === "tag") {
        var kid = "sel-k-" + (++uid);
        box.appendChild(el("label", { "for": kid, "class": "inline" }, "key"));
        var key = el("input", { id: kid, value: node.key || "", size: "12", "data-testid": "sel-key" });
        key.addEventListener("input", function () { node.key = key.value; changed(); });
        box.appendChild(key);
      }
      var vid = "sel-v-" + (++uid);
      var vlabel = node.field === "tag" ? "value (regex; empty: has the tag)" : node.field === "name" ? "regex" : "value(s), comma-separated";
      box.appendChild(el("label", { "for": vid, "class": "inline" }, vlabel));
      var val = el("input", { id: vid, value: node.value || "", size: "18", spellcheck: "false", "data-testid": "sel-value" });
      if (document.getElementById("facet-" + node.field)) val.setAttribute("list", "facet-" + node.field);
      val.addEventListener("input", function () { node.value = val.value; changed(); });
      box.appendChild(val);
      box.appendChild(el("span", { "class": "sel-error", "aria-live": "polite" }));
      return box;
    }
    function showPreview(data) {
      $all(".sel-cond", root).forEach(function (c) { c.classList.remove("bad"); $(".sel-error", c).textContent = ""; });
      previewBox.textContent = "";
      if (!data.ok) {
        var err = data.error || {};
        var node = err.path ? $all(".sel-cond", root).filter(function (c) {
          return err.path === c.dataset.path || err.path.indexOf(c.dataset.path + ".") === 0;
        })[0] : null;
        var msg = err.message || "invalid selector";
        if (node) {
          node.classList.add("bad");
          var input = $("[data-testid=sel-value]", node);
          var text = msg;
          if (err.position !== null && err.position !== undefined && input) {
            text = msg + " — here: " + input.value.slice(0, err.position) + "⟨" + (input.value.charAt(err.position) || "end") + "⟩" + input.value.slice(err.position + 1);
          }
          $(".sel-error", node).textContent = text;
          if (input) input.setAttribute("aria-invalid", "true");
        }
        previewBox.appendChild(el("p", { "class": "alert error", "data-testid": "sel-error" }, msg));
        return;
      }
      $all("[aria-invalid]", root).forEach(function (i) { i.removeAttribute("aria-invalid"); });
      var head = el("p", { "data-testid": "sel-count" });
      head.textContent = data.count + " instance" + (data.count === 1 ? "" : "s") + " match now" + (data.count > data.shown ? " (the first " + data.shown + " by name below)" : "") + ".";
      previewBox.appendChild(head);
      if (!data.instances.length) return;
      var t = el("table", { "data-testid": "sel-matches" });
      t.appendChild(el("caption", { "class": "sr-only" }, "Instances the selector matches now"));
      var hr = el("tr");
      ["Instance", "Provider", "Account", "Region", "Engine", "Status"].forEach(function (h) { hr.appendChild(el("th", { scope: "col" }, h)); });
      var thead = el("thead"); thead.appendChild(hr); t.appendChild(thead);
      var tb = el("tbody");
      data.instances.forEach(function (i) {
        var tr = el("tr");
        var a = el("a", { href: "/instances/" + i.instance_id }, i.name);
        var td = el("td"); td.appendChild(a); tr.appendChild(td);
        [i.provider, i.account || "–", i.region || "–", i.engine].forEach(function (v) { tr.appendChild(el("td", null, v)); });
        tr.appendChild(el("td", null, i.status));
        tb.appendChild(tr);
      });
      t.appendChild(tb);
      var wrap = el("div", { "class": "table-wrap" }); wrap.appendChild(t);
      previewBox.appendChild(wrap);
    }
    var ask = debounce(function () {
      var j = toJson(tree);
      hidden.value = j ? JSON.stringify(j) : "";
      if (!j) { previewBox.textContent = ""; previewBox.appendChild(el("p", { "class": "muted" }, "Add a condition to see what it matches.")); return; }
      preview({ selector: j }, showPreview);
    }, 350);
    function changed() { var j = toJson(tree); hidden.value = j ? JSON.stringify(j) : ""; ask(); }
    draw();
    if (tree.items.length) ask();
    return function () { var j = toJson(tree); return j ? JSON.stringify(j) : ""; };
  }

  // ---------------------------------------------------------------- dialogs
  function openModal(dialog, opener) {
    dialog._opener = opener;
    dialog.showModal();
    var first = dialog.querySelector("textarea, input:not([type=hidden]), button");
    if (first) first.focus();
  }
  function lineChart(box, data, series) {
    if (!window.uPlot || !data.t.length) { box.textContent = "no data"; return; }
    var width = Math.max(280, Math.min(box.clientWidth || 560, 1240));
    new window.uPlot({
      width: width, height: 200, legend: { show: true },
      series: [{}].concat(series), axes: [{}, {}]
    }, [data.t].concat(series.map(function (s) { return data[s.key]; })), box);
  }
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("[data-activity]");
    if (b) {
      var d = $("#activity-dialog");
      $("#activity-title").textContent = b.dataset.title;
      var body = $("#activity-body");
      body.textContent = "Loading…";
      openModal(d, b);
      fetch(b.dataset.activity, { credentials: "same-origin" }).then(function (r) {
        return r.text().then(function (t) { return { ok: r.ok, html: t }; });
      }).then(function (res) {
        if (!res.ok) { var tmp = el("div"); tmp.innerHTML = res.html; body.textContent = tmp.textContent.replace("×", "").trim(); return; }
        body.innerHTML = res.html;
        var src = $(".rec-chart-data", body);
        if (src) lineChart($(".chart-canvas", body), JSON.parse(src.textContent), [
          { key: "connections", label: "connections", stroke: "#0b5cad", width: 2 },
          { key: "cpu", label: "CPU %", stroke: "#b42318" }]);
      }).catch(function () { body.textContent = "The server did not answer."; });
      return;
    }
    var x = e.target.closest && e.target.closest("[data-dismiss]");
    if (x) {
      var dd = $("#dismiss-dialog");
      $("#dismiss-form").action = x.dataset.dismiss;
      $("#dismiss-title").textContent = "Dismiss the recommendation for " + x.dataset.name;
      $("#dismiss-reason").value = "";
      openModal(dd, x);
    }
  });

  // ---------------------------------------------------------------- savings chart
  function savingsChart() {
    var src = $("#savings-data"), box = $("#savings-chart");
    if (!src || !box) return;
    lineChart(box, JSON.parse(src.textContent), [
      { key: "always_on", label: "always-on $", stroke: "#b42318", width: 2 },
      { key: "cost", label: "realized cost $", stroke: "#0b5cad", width: 2 }]);
    var form = $("#range-form");
    function dates() {
      var custom = $("input[name=range][value=custom]", form).checked;
      $all("input[type=date]", form).forEach(function (i) { i.disabled = !custom; });
    }
    $all("input[name=range]", form).forEach(function (r) { r.addEventListener("change", dates); });
    dates();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = $("#schedule-form");
    if (form) {
      editor(form);
      var root = $("#selector-builder");
      if (root) form._selector = builder(root, $("#f-selector"), $("#selector-preview"));
    }
    savingsChart();
  });
})();
