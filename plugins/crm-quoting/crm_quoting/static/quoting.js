/* The quote editor's progressive enhancement: a product picker on the catalog's search.json
   (the party's price shown as the unit price's placeholder: left empty, the server applies
   it) and an "Add line" button. Without it the form works the same: a typed SKU picks the
   product on save, and three blank rows are always there. Values are set as text, never HTML. */
(function () {
  "use strict";
  var form = document.getElementById("quote-form");
  if (!form) { return; }
  var searchUrl = form.getAttribute("data-search-url");
  var partyId = form.getAttribute("data-party-id");
  var tbody = document.querySelector("#lines tbody");
  var template = document.getElementById("line-template");
  var addButton = document.getElementById("add-line");

  function field(row, name) { return row.querySelector('[data-field="' + name + '"]'); }

  function plain(value) {  // "45000.0000" -> "45000", "5.500" -> "5.5"
    var text = String(value);
    return text.indexOf(".") >= 0 ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
  }

  function hide(row) {
    var list = row.querySelector(".picker");
    list.hidden = true;
    while (list.firstChild) { list.removeChild(list.firstChild); }
  }

  function choose(row, match) {
    var price = match.price;
    field(row, "product_id").value = String(match.product_id);
    field(row, "product_sku").value = match.sku;
    field(row, "sku").value = match.sku;
    field(row, "description").value = price.customer_part_number
      ? match.name + " (your part number " + price.customer_part_number + ")" : match.name;
    var unit = field(row, "unit");
    unit.value = "";
    unit.placeholder = price.unit || "";
    var unitPrice = field(row, "unit_price");
    unitPrice.value = "";
    unitPrice.placeholder = plain(price.unit_price) + " " + price.currency;
    unitPrice.title = price.source + ": leave empty to use it, or type another price";
    field(row, "tax_rate").value = "";
    var note = row.querySelector(".price-source") || document.createElement("small");
    note.className = "muted price-source";
    note.textContent = price.source + " " + plain(price.unit_price) + " " + price.currency;
    row.querySelector(".cell-description").appendChild(note);
    hide(row);
  }

  function show(row, matches) {
    var list = row.querySelector(".picker");
    hide(row);
    matches.forEach(function (match) {
      var item = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "link pick";
      button.textContent = match.sku + " — " + match.name + " — " + plain(match.price.unit_price) + " " +
        match.price.currency + " (" + match.price.source + ")";
      button.addEventListener("click", function () { choose(row, match); });
      item.appendChild(button);
      list.appendChild(item);
    });
    list.hidden = matches.length === 0;
  }

  function search(row) {
    var text = field(row, "sku").value.trim();
    if (!searchUrl || text.length < 1) { hide(row); return; }
    var quantity = field(row, "quantity").value.trim().replace(",", ".");
    if (!/^\d+(\.\d+)?$/.test(quantity) || Number(quantity) <= 0) { quantity = "1"; }
    var url = searchUrl + "?q=" + encodeURIComponent(text) + "&quantity=" + encodeURIComponent(quantity) +
      (partyId ? "&party_id=" + encodeURIComponent(partyId) : "");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : { matches: [] }; })
      .then(function (data) {
        if (field(row, "sku").value.trim() === text) { show(row, data.matches || []); }
      })
      .catch(function () { hide(row); });
  }

  function wire(row) {
    var sku = field(row, "sku");
    var timer = null;
    sku.addEventListener("input", function () {
      if (sku.value.trim().toLowerCase() !== field(row, "product_sku").value.trim().toLowerCase()) {
        field(row, "product_id").value = "";  // another product (or a free line): picked again
      }
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { search(row); }, 250);
    });
    sku.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { hide(row); }
    });
  }

  Array.prototype.forEach.call(tbody.querySelectorAll("tr.line-row"), wire);

  if (template && addButton) {
    addButton.hidden = false;
    addButton.addEventListener("click", function () {
      var index = -1;
      Array.prototype.forEach.call(tbody.querySelectorAll("tr.line-row"), function (row) {
        index = Math.max(index, parseInt(row.getAttribute("data-index"), 10));
      });
      tbody.insertAdjacentHTML("beforeend", template.innerHTML.split("__i__").join(String(index + 1)));
      var row = tbody.lastElementChild;
      field(row, "position").value = String(tbody.querySelectorAll("tr.line-row").length);
      wire(row);
      field(row, "sku").focus();
    });
  }
})();
