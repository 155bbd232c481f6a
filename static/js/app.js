// OpenSync's small amount of JavaScript. Every page works without it; this adds the theme
// toggle, HTMX error and loading feedback, copy buttons, modals and bulk selection.
(function () {
  "use strict";
  var root = document.documentElement;

  // Theme: system → light → dark, remembered in localStorage (applied early in <head>).
  var toggle = document.getElementById("theme-toggle");
  function showTheme() {
    var theme = root.dataset.theme || "system";
    if (toggle) {
      toggle.setAttribute("aria-label", "Colour theme: " + theme);
      toggle.textContent = theme === "dark" ? "☾" : theme === "light" ? "☀" : "◐";
    }
  }
  if (toggle) {
    toggle.addEventListener("click", function () {
      var next = { system: "light", light: "dark", dark: "system" }[root.dataset.theme || "system"];
      if (next === "system") { delete root.dataset.theme; } else { root.dataset.theme = next; }
      try { if (next === "system") localStorage.removeItem("opensync-theme"); else localStorage.setItem("opensync-theme", next); } catch (e) {}
      showTheme();
    });
  }
  showTheme();

  function showError(text) {
    var box = document.getElementById("htmx-error");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }
  // An HTMX request that fails shows why instead of doing nothing.
  document.body.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail.xhr;
    if (xhr.status === 422) return;  // form errors are swapped in as HTML
    var reason = "";
    try { reason = JSON.parse(xhr.responseText).error || ""; } catch (err) {}
    if (!reason && xhr.status === 403) reason = "You don't have permission to do that.";
    if (!reason && xhr.status === 404) reason = "It no longer exists, or you don't have access to it.";
    showError((reason || "Something went wrong.") + " (" + xhr.status + ")");
  });
  document.body.addEventListener("htmx:sendError", function () {
    showError("The server can't be reached. Check your connection and try again.");
  });
  document.body.addEventListener("htmx:beforeRequest", function () {
    var box = document.getElementById("htmx-error");
    if (box) box.hidden = true;
  });

  // A thin loading bar for any HTMX request that takes more than a moment.
  var pending = 0, timer = null;
  document.body.addEventListener("htmx:beforeRequest", function () {
    pending++;
    if (!timer) timer = setTimeout(function () { root.classList.add("is-loading"); }, 150);
  });
  document.body.addEventListener("htmx:afterRequest", function () {
    pending = Math.max(0, pending - 1);
    if (pending === 0) { clearTimeout(timer); timer = null; root.classList.remove("is-loading"); }
  });

  // Modals: a fragment with a <dialog> swapped into #modal opens as a modal dialog.
  document.body.addEventListener("htmx:afterSwap", function (e) {
    var target = e.detail.target;  // undefined when htmx restores a page from history (Back)
    var dialog = target && target.id === "modal" && target.querySelector("dialog");
    if (dialog && !dialog.open) {
      dialog.showModal();
      dialog.addEventListener("close", function () { dialog.remove(); });
    }
  });
  document.addEventListener("click", function (e) {
    if (e.target.closest("[data-close-dialog]")) {
      var dialog = e.target.closest("dialog");
      if (dialog) { e.preventDefault(); dialog.close(); }
    }
  });

  // Copy buttons: <button data-copy="#id">; falls back to selecting the text where the
  // clipboard API is unavailable (plain http on a non-localhost address).
  document.addEventListener("click", function (e) {
    var button = e.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.dataset.copy);
    if (!source) return;
    var label = button.textContent;
    var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = label; }, 1500); };
    var text = source.dataset.copyText !== undefined ? source.dataset.copyText
      : ("value" in source && source.value !== undefined ? source.value : source.textContent.trim());
    var select = function () {
      var range = document.createRange(); range.selectNodeContents(source);
      var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
      button.textContent = "Press Ctrl+C";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, select);
    } else { select(); }
  });

  // <button data-copy-url="…">: copies the text at that URL (a message's whole text, which the
  // page doesn't carry: a 5 MB message would weigh 5 MB on every view). The clipboard item takes
  // a promise, so the copy stays tied to the click while the text downloads; where the clipboard
  // API is unavailable the text is shown, selected, under the button's message.
  document.addEventListener("click", function (e) {
    var button = e.target.closest("[data-copy-url]");
    if (!button) return;
    var label = button.textContent;
    var say = function (text) { button.textContent = text; setTimeout(function () { button.textContent = label; }, 1500); };
    var text = fetch(button.dataset.copyUrl, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.text();
    });
    var failed = function () { say("Copy failed"); };
    var select = function () {
      text.then(function (value) {
        var box = document.createElement("textarea");
        box.className = "copy-fallback"; box.readOnly = true; box.value = value;
        (button.closest("article") || button.parentNode).appendChild(box);
        box.focus(); box.select();
        button.textContent = "Press Ctrl+C";
      }, failed);
    };
    if (!(navigator.clipboard && window.isSecureContext)) { select(); return; }
    var copied;
    if (window.ClipboardItem && navigator.clipboard.write) {
      var blob = text.then(function (value) { return new Blob([value], { type: "text/plain" }); });
      copied = navigator.clipboard.write([new ClipboardItem({ "text/plain": blob })]);
    } else {
      copied = text.then(function (value) { return navigator.clipboard.writeText(value); });
    }
    copied.then(function () { say("Copied"); }, function () { text.then(select, failed); });
  });

  // Ctrl+K / Cmd+K focuses the page's search box where it offers the shortcut (the context page).
  document.addEventListener("keydown", function (e) {
    if (e.key.toLowerCase() !== "k" || !(e.ctrlKey || e.metaKey) || e.altKey || e.shiftKey) return;
    var box = document.querySelector("input[aria-keyshortcuts~='Control+K']");
    if (box) { e.preventDefault(); box.focus(); box.select(); }
  });

  // The review queue (data-review-queue): one key per review action. Keys typed into a field
  // stay there; Escape leaves the field.
  document.addEventListener("keydown", function (e) {
    var queue = document.querySelector("[data-review-queue]");
    if (!queue || e.ctrlKey || e.metaKey || e.altKey) return;
    var field = e.target.closest && e.target.closest("input, textarea, select, [contenteditable]");
    if (field) { if (e.key === "Escape") field.blur(); return; }
    var panel = document.getElementById("review-panel");
    var click = function (selector) { var el = document.querySelector(selector); if (el) { e.preventDefault(); el.click(); } };
    var statuses = { "0": "", "1": "golden", "2": "correct", "3": "incorrect", "4": "needs_review" };
    if (e.key === "j" || e.key === "ArrowRight") click("[data-queue=next]");
    else if (e.key === "k" || e.key === "ArrowLeft") click("[data-queue=previous]");
    else if (e.key === "e") click("#review-panel [data-review=eval-ready]");
    else if (e.key in statuses) {
      var select = document.getElementById("review-eval-status");
      if (select) { e.preventDefault(); select.value = statuses[e.key]; select.dispatchEvent(new Event("change", { bubbles: true })); }
    } else if (e.key === "n" || e.key === "t") {
      var target = document.getElementById(e.key === "n" ? "review-eval-notes" : "review-add-tag");
      if (target) { e.preventDefault(); if (panel) panel.open = true; target.focus(); }
    }
  });

  // Escape in an inline edit form (rename) cancels it, like its Cancel link.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    var form = e.target.closest && e.target.closest("form[data-escape-cancels]");
    var cancel = form && form.querySelector("[data-cancel]");
    if (cancel) { e.preventDefault(); cancel.click(); }
  });

  // On a phone, the list's filter panel starts folded unless a filter is active.
  document.querySelectorAll("details[data-collapse-on-phone]:not([data-active])").forEach(function (d) {
    if (window.matchMedia("(max-width: 640px)").matches) d.open = false;
  });

  // <form data-include-form="#other">: on submit, carry the other form's current filter values
  // along as hidden fields (the search box on the session list takes the filters with it).
  document.addEventListener("submit", function (e) {
    var form = e.target, selector = form.dataset && form.dataset.includeForm;
    var other = selector && document.querySelector(selector);
    if (!other) return;
    form.querySelectorAll("input[data-included]").forEach(function (input) { input.remove(); });
    new FormData(other).forEach(function (value, name) {
      if (!value || ["cursor", "sort", "dir", "csrfmiddlewaretoken"].indexOf(name) >= 0) return;
      var input = document.createElement("input");
      input.type = "hidden"; input.name = name; input.value = value; input.dataset.included = "";
      form.appendChild(input);
    });
  }, true);

  // <select data-autosubmit> submits its form on change (the workspace switcher).
  document.addEventListener("change", function (e) {
    if (e.target.matches("select[data-autosubmit]")) e.target.form.requestSubmit();
  });

  // Bulk selection: [data-select-all] toggles every [data-select-item] in its form and the
  // [data-selected-count] / [data-needs-selection] elements follow the selection.
  function syncSelection(form) {
    var items = form.querySelectorAll("[data-select-item]");
    var checked = form.querySelectorAll("[data-select-item]:checked").length;
    form.querySelectorAll("[data-selected-count]").forEach(function (el) { el.textContent = checked; });
    form.querySelectorAll("[data-needs-selection]").forEach(function (el) { el.disabled = checked === 0; });
    var all = form.querySelector("[data-select-all]");
    if (all) { all.checked = checked > 0 && checked === items.length; all.indeterminate = checked > 0 && checked < items.length; }
  }
  document.addEventListener("change", function (e) {
    var form = e.target.form;
    if (!form) return;
    if (e.target.matches("[data-select-all]")) {
      form.querySelectorAll("[data-select-item]").forEach(function (box) { box.checked = e.target.checked; });
    }
    if (e.target.matches("[data-select-all], [data-select-item]")) syncSelection(form);
  });
  function syncAll() { document.querySelectorAll("form[data-bulk]").forEach(syncSelection); }
  document.body.addEventListener("htmx:afterSettle", syncAll);
  syncAll();

  // Analytics: typing a date picks "Custom range"; picking a preset submits the filters.
  document.addEventListener("change", function (e) {
    var form = e.target.form;
    if (!form || !form.matches("[data-range-form]")) return;
    var range = form.querySelector("[name=range]");
    if (e.target.matches("[data-range-custom]") && range) range.value = "custom";
    if (e.target === range && range.value !== "custom") form.requestSubmit();
  });
})();
