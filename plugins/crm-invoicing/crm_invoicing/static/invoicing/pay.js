// Sends the payer on to the payment provider: submits the form marked data-submit-now at once
// (a button stays for browsers without JavaScript).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-submit-now]");
  if (form) form.submit();
});
