/* crmcore admin: the few interactions that must not reload the page. No framework, no build. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function post(url, data) {
    return fetch(url, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "fetch", "Accept": "text/html" },
    });
  }

  function showMessage(text, kind) {
    var box = document.getElementById("live-message");
    if (!box) {
      box = document.createElement("p");
      box.id = "live-message";
      box.setAttribute("role", "alert");
      document.querySelector("main").prepend(box);
    }
    box.className = "flash flash-" + (kind || "error");
    box.textContent = text;
  }

  async function errorText(response) {
    var type = response.headers.get("Content-Type") || "";
    if (type.indexOf("json") >= 0) {
      var body = await response.json();
      return body.detail || body.title || "The change was refused.";
    }
    var doc = new DOMParser().parseFromString(await response.text(), "text/html");
    var p = doc.querySelector(".error-page p, .form-error");
    return p ? p.textContent.trim() : "The change was refused.";
  }

  // counts a list page does not wait for: "[data-count-url]" is filled when the count arrives
  async function fillCount(element) {
    try {
      var response = await fetch(element.getAttribute("data-count-url"), {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch", "Accept": "application/json" },
      });
      if (!response.ok) return;
      var body = await response.json();
      element.textContent = body.text;
    } catch (err) {
      /* the list stands without its count */
    }
  }
  document.querySelectorAll("[data-count-url]").forEach(fillCount);

  // forms that submit themselves when a value changes (business switcher, filters)
  document.addEventListener("change", function (event) {
    var form = event.target.form;
    if (!form) return;
    if (form.hasAttribute("data-autosubmit")) form.submit();
    if (form.hasAttribute("data-inline")) inlineSubmit(form);
  });

  // one-click changes inside a list: the server answers with the new fragment
  async function inlineSubmit(form) {
    var target = form.closest("[data-swap]") || form;
    var response = await post(form.action, new FormData(form));
    if (!response.ok) {
      showMessage(await errorText(response));
      form.reset();
      return;
    }
    var html = await response.text();
    var holder = document.createElement("div");
    holder.innerHTML = html;
    var fresh = holder.firstElementChild;
    if (fresh) target.replaceWith(fresh);
    showMessage("Saved.", "success");
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.hasAttribute("data-inline")) {
      event.preventDefault();
      inlineSubmit(form);
    }
    if (form.hasAttribute("data-confirm") && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // the deals board: drag a card to another column; a refusal puts it back with the reason
  var dragged = null;
  document.addEventListener("dragstart", function (event) {
    var card = event.target.closest && event.target.closest("[data-card]");
    if (!card) return;
    dragged = { card: card, from: card.parentElement, next: card.nextElementSibling };
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.getAttribute("data-record-id"));
    card.classList.add("dragging");
  });
  document.addEventListener("dragend", function () {
    if (dragged) dragged.card.classList.remove("dragging");
  });
  document.addEventListener("dragover", function (event) {
    var column = event.target.closest && event.target.closest("[data-stage-id]");
    if (column && dragged) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
    }
  });
  document.addEventListener("drop", async function (event) {
    var column = event.target.closest && event.target.closest("[data-stage-id]");
    if (!column || !dragged) return;
    event.preventDefault();
    var move = dragged;
    dragged = null;
    var list = column.querySelector("[data-cards]") || column;
    if (move.from === list) return;
    list.prepend(move.card);
    var data = new FormData();
    data.append("stage_id", column.getAttribute("data-stage-id"));
    var response = await post(move.card.getAttribute("data-move-url"), data);
    if (!response.ok) {
      move.from.insertBefore(move.card, move.next);
      showMessage(await errorText(response));
      return;
    }
    showMessage("Moved to " + column.getAttribute("data-stage-name") + ".", "success");
  });
})();
