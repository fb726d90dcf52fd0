"""Email: what each notification says (`compose`), sending it over SMTP (`smtp`), and
delivering one notification row exactly once (`delivery`)."""
