"""crmcore offline payments: a payment gateway that takes no money itself. The payment page shows
the payer how to pay (bank transfer, cheque, cash); staff record the payment when it arrives."""

__version__ = "0.1.0"

#: the plugin's id: its entry-point name in ``crmcore.plugins``
NAME = "payments-manual"
