"""seatsvc: per-seat subscription billing. `seatsvc.app.create_app` builds the web app."""
